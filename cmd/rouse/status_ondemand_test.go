package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/trackers/roon"
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

// `rouse status NAME` says which on-demand chains a component is part of,
// and whether it starts with them or runs all the time; `rouse status`
// notes it for an idle member.
func TestStatusShowsTheChainsAComponentIsPartOf(t *testing.T) {
	db := wire.Service{Name: "db", Kind: "exec", State: "idle", Since: time.Now(), Chains: []string{"blog", "wiki"}, StartsOnDemand: true}
	var one bytes.Buffer
	printService(&one, db)
	if !strings.Contains(one.String(), "\n  on demand: part of the chain of blog, wiki (it runs while one of them needs it)\n") {
		t.Errorf("rouse status db:\n%s", one.String())
	}
	var all bytes.Buffer
	printStatus(&all, wire.Health{Status: wire.StatusOK, Components: []wire.Service{db}})
	if !strings.Contains(all.String(), "starts with the chain of blog, wiki") {
		t.Errorf("rouse status:\n%s", all.String())
	}
	db.State, db.StartsOnDemand = "ready", false
	one.Reset()
	printService(&one, db)
	if !strings.Contains(one.String(), "\n  part of the on-demand chain of blog, wiki (it runs all the time: a component that does not start on demand needs it too)\n") {
		t.Errorf("rouse status db, needed by a component that runs all the time:\n%s", one.String())
	}
	all.Reset()
	printStatus(&all, wire.Health{Status: wire.StatusOK, Components: []wire.Service{db}})
	if strings.Contains(all.String(), "chain") {
		t.Errorf("a ready member is noted:\n%s", all.String())
	}
	one.Reset()
	printService(&one, wire.Service{Name: "other", Kind: "exec", State: "ready", Since: time.Now()})
	if strings.Contains(one.String(), "chain") {
		t.Errorf("a component in no chain:\n%s", one.String())
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

// serviceViaAPI is s as the CLI receives it: through JSON, so Detail is
// a generic map.
func serviceViaAPI(t *testing.T, s wire.Service) wire.Service {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out wire.Service
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// `rouse status NAME` shows a websocket or roon component's connection
// record (the API's detail), and optional dependencies beside required
// ones.
func TestStatusNameShowsTheStreamDetailAndOptionalDependencies(t *testing.T) {
	at := time.Now().Add(-5 * time.Minute)
	stream := wire.StreamDetail{Connects: 3, Reconnects: 2, DisconnectsByCode: map[string]int{"1006": 1, "timeout": 1},
		LastDisconnect: &wire.Disconnect{At: at, Code: "timeout", Reason: "no pong within 60s"}}
	var ws bytes.Buffer
	printService(&ws, serviceViaAPI(t, wire.Service{Name: "feed", Kind: "websocket", State: "ready", Since: at,
		DependsOn: []string{"network"}, Optional: []string{"tunnel"}, Detail: stream}))
	for _, want := range []string{
		"  needs: network, tunnel (optional)\n",
		"  connection: 3 connects · 2 reconnects · disconnects by code: 1006 ×1, timeout ×1\n",
		"    last disconnect: 5m ago, code timeout: no pong within 60s\n",
	} {
		if !strings.Contains(ws.String(), want) {
			t.Errorf("rouse status feed lacks %q:\n%s", want, ws.String())
		}
	}
	if strings.Contains(ws.String(), "roon:") {
		t.Errorf("a websocket component shows a roon line:\n%s", ws.String())
	}

	var rn bytes.Buffer
	printService(&rn, serviceViaAPI(t, wire.Service{Name: "roon", Kind: "roon", State: "ready", Since: at,
		Detail: roon.Detail{StreamDetail: wire.StreamDetail{Connects: 1, DisconnectsByCode: map[string]int{}}, Core: "Studio", Address: "192.0.2.5:9330", Paired: true, Zones: 3}}))
	for _, want := range []string{"  roon: Studio at 192.0.2.5:9330, paired, 3 zones\n", "  connection: 1 connects · 0 reconnects\n"} {
		if !strings.Contains(rn.String(), want) {
			t.Errorf("rouse status roon lacks %q:\n%s", want, rn.String())
		}
	}
	if strings.Contains(rn.String(), "last disconnect") || strings.Contains(rn.String(), "by code") {
		t.Errorf("a stream that never dropped shows a disconnect:\n%s", rn.String())
	}

	var sched bytes.Buffer
	printService(&sched, serviceViaAPI(t, wire.Service{Name: "scheduler", Kind: "scheduler", State: "ready", Since: at,
		Detail: map[string]any{"next_runs": []string{"maintenance"}}}))
	if strings.Contains(sched.String(), "connection:") {
		t.Errorf("a detail that is not a stream's shows a connection line:\n%s", sched.String())
	}
}

// `rouse status NAME` exits 0 for an idle on-demand component (the whole
// status counts idle as well) unless its entry point cannot listen.
func TestStatusOfAnIdleComponentIsWell(t *testing.T) {
	for _, c := range []struct {
		s    wire.Service
		well bool
	}{
		{wire.Service{State: "ready"}, true},
		{wire.Service{State: "catching_up"}, true},
		{wire.Service{State: "idle", OnDemand: "127.0.0.1:8080"}, true},
		{wire.Service{State: "idle"}, true}, // a dependency of an idle chain
		{wire.Service{State: "idle", OnDemand: "127.0.0.1:8080", OnDemandError: "bind: address already in use"}, false},
		{wire.Service{State: "starting"}, false},
		{wire.Service{State: "stopped"}, false},
		{wire.Service{State: "failed"}, false},
	} {
		if got := serviceWell(c.s); got != c.well {
			t.Errorf("%+v: well %v, want %v", c.s, got, c.well)
		}
	}
}
