package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/wire"
)

// An on-demand entry point that cannot listen shows in `rouse status` (the
// NOTE column) and in `rouse status NAME`.
func TestStatusShowsAnEntryPointThatCannotListen(t *testing.T) {
	why := "ondemand: blog: listen on 127.0.0.1:8080: bind: address already in use"
	s := wire.Service{Name: "blog", Kind: "exec", State: "idle", Since: time.Now(), OnDemand: "127.0.0.1:8080", OnDemandError: why}
	var all bytes.Buffer
	printStatus(&all, wire.Health{Status: wire.StatusDegraded, Components: []wire.Service{s}})
	if !strings.Contains(all.String(), "on demand, not listening: ondemand: blog: listen on 127.0.0.1:8080") {
		t.Errorf("rouse status:\n%s", all.String())
	}
	var one bytes.Buffer
	printService(&one, s)
	if !strings.Contains(one.String(), "on demand: 127.0.0.1:8080, NOT listening (trying again): "+why) {
		t.Errorf("rouse status blog:\n%s", one.String())
	}
	s.OnDemandError = ""
	one.Reset()
	printService(&one, s)
	if !strings.Contains(one.String(), "on demand: 127.0.0.1:8080 (the first connection there, or rouse start blog, starts it)\n") {
		t.Errorf("rouse status blog, listening and idle:\n%s", one.String())
	}
	s.State = "ready"
	one.Reset()
	printService(&one, s)
	if !strings.Contains(one.String(), "on demand: 127.0.0.1:8080\n") {
		t.Errorf("rouse status blog, listening and ready:\n%s", one.String())
	}
}

// An idle on-demand component says in `rouse status` where it listens: a
// newcomer's first question is where to connect to start it.
func TestStatusNotesWhereAnIdleComponentStarts(t *testing.T) {
	blog := wire.Service{Name: "blog", Kind: "exec", State: "idle", Since: time.Now(), OnDemand: "127.0.0.1:8080"}
	db := wire.Service{Name: "db", Kind: "exec", State: "idle", Since: time.Now()}
	var all bytes.Buffer
	printStatus(&all, wire.Health{Status: wire.StatusOK, Components: []wire.Service{db, blog}})
	lines := strings.Split(all.String(), "\n")
	if len(lines) < 4 || !strings.HasSuffix(strings.TrimSpace(lines[3]), "starts on demand: 127.0.0.1:8080") || strings.Contains(lines[2], "on demand:") {
		t.Errorf("rouse status:\n%s", all.String())
	}
	blog.State = "ready"
	all.Reset()
	printStatus(&all, wire.Health{Status: wire.StatusOK, Components: []wire.Service{blog}})
	if strings.Contains(all.String(), "starts on demand") {
		t.Errorf("a ready component is noted as starting on demand:\n%s", all.String())
	}
}

// The closing line of `rouse wake --follow` counts the components waiting
// for the user apart from the timed-out ones.
func TestRestoreLineCountsWaitingForTheUser(t *testing.T) {
	var b bytes.Buffer
	printRestore(&b, wire.Wake{Restore: wire.RestoreSummary{DurationMS: 1200, Ready: 3, WaitingForUser: 1}})
	if got := strings.SplitN(b.String(), "\n", 2)[0]; got != "restore done in 1.2s: 3 ready, 0 timed out, 0 failed, 1 waiting for you" {
		t.Errorf("got %q", got)
	}
}
