package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestOnDemand(t *testing.T) {
	t.Run("DefaultsFilledIn", func(t *testing.T) {
		c := parseOK(t, "trackers:\n  - name: blog\n    kind: plain\n    on_demand: {listen: 127.0.0.1:8080, upstream: 127.0.0.1:9002}\n")
		got := *c.Trackers[0].OnDemand
		want := OnDemand{Listen: "127.0.0.1:8080", Upstream: "127.0.0.1:9002", Mode: "http", OnFailure: "rollback"}
		if got != want {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	})
	t.Run("EveryKeyRead", func(t *testing.T) {
		c := parseOK(t, "trackers:\n  - name: db\n    kind: plain\n    on_demand:\n      listen: localhost:5433\n      upstream: 127.0.0.1:5432\n      mode: tcp\n      idle_stop: 30m\n      on_failure: keep\n")
		got := *c.Trackers[0].OnDemand
		want := OnDemand{Listen: "localhost:5433", Upstream: "127.0.0.1:5432", Mode: "tcp", IdleStop: 30 * time.Minute, OnFailure: "keep"}
		if got != want {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	})
	t.Run("NotPartOfTheComponentsHash", func(t *testing.T) {
		a := parseOK(t, "trackers:\n  - name: blog\n    kind: plain\n    on_demand: {listen: 127.0.0.1:8080, upstream: 127.0.0.1:9002, idle_stop: 1m}\n")
		b := parseOK(t, "trackers:\n  - name: blog\n    kind: plain\n    on_demand: {listen: 127.0.0.1:8080, upstream: 127.0.0.1:9002, idle_stop: 2m}\n")
		if a.Trackers[0].Hash != b.Trackers[0].Hash {
			t.Fatal("editing on_demand changed the component's hash: the component would restart")
		}
	})
}

func TestOnDemandErrors(t *testing.T) {
	const head = "trackers:\n  - name: blog\n    kind: plain\n    on_demand:\n"
	tests := []struct {
		name, src, want string
		is              error
	}{
		{"ListenRequired", head + "      upstream: 127.0.0.1:9002\n",
			`rouse.yaml:4: trackers[0].on_demand.listen: required: the host:port rouse listens on for this component, like "127.0.0.1:8080"`, ErrRequired},
		{"UpstreamRequired", head + "      listen: 127.0.0.1:8080\n",
			`rouse.yaml:4: trackers[0].on_demand.upstream: required: the host:port the component serves on, like "127.0.0.1:9002"`, ErrRequired},
		{"ListenNotHostPort", head + "      listen: 8080\n      upstream: 127.0.0.1:9002\n",
			`rouse.yaml:5: trackers[0].on_demand.listen: must be host:port like "127.0.0.1:8080", got "8080"`, ErrInvalidValue},
		{"ListenPortZero", head + "      listen: 127.0.0.1:0\n      upstream: 127.0.0.1:9002\n",
			`rouse.yaml:5: trackers[0].on_demand.listen: must have a port number from 1 to 65535, got "127.0.0.1:0"`, ErrInvalidValue},
		{"ListenNotLoopback", head + "      listen: 0.0.0.0:8080\n      upstream: 127.0.0.1:9002\n",
			`rouse.yaml:5: trackers[0].on_demand.listen: must be a loopback address (127.0.0.1, [::1] or localhost), got "0.0.0.0:8080"; set on_demand.allow_non_loopback: true to listen on 0.0.0.0`, ErrNotLoopback},
		{"UpstreamWithoutHost", head + "      listen: 127.0.0.1:8080\n      upstream: :9002\n",
			`rouse.yaml:6: trackers[0].on_demand.upstream: must be host:port like "127.0.0.1:8080", got ":9002"`, ErrInvalidValue},
		{"UpstreamIsListen", head + "      listen: 127.0.0.1:8080\n      upstream: localhost:8080\n",
			`rouse.yaml:6: trackers[0].on_demand.upstream: must not be on_demand.listen: rouse would forward to itself, got "localhost:8080"`, ErrInvalidValue},
		{"BadMode", head + "      listen: 127.0.0.1:8080\n      upstream: 127.0.0.1:9002\n      mode: udp\n",
			`rouse.yaml:7: trackers[0].on_demand.mode: must be one of http, tcp, got "udp"`, ErrInvalidValue},
		{"BadOnFailure", head + "      listen: 127.0.0.1:8080\n      upstream: 127.0.0.1:9002\n      on_failure: retry\n",
			`rouse.yaml:7: trackers[0].on_demand.on_failure: must be one of rollback, keep, got "retry"`, ErrInvalidValue},
		{"NegativeIdleStop", head + "      listen: 127.0.0.1:8080\n      upstream: 127.0.0.1:9002\n      idle_stop: -1s\n",
			`rouse.yaml:7: trackers[0].on_demand.idle_stop: must be 0 (never) or a positive duration like "30m", got "-1s"`, ErrInvalidValue},
		{"UnknownKey", head + "      listen: 127.0.0.1:8080\n      upstream: 127.0.0.1:9002\n      idle: 1m\n",
			`rouse.yaml:7: trackers[0].on_demand.idle: unknown key; expected one of: allow_non_loopback, idle_stop, listen, mode, on_failure, upstream`, ErrUnknownKey},
		{"ListenIsTheAPIs", "listen: 127.0.0.1:8000\n" + head + "      listen: localhost:8000\n      upstream: 127.0.0.1:9002\n",
			`rouse.yaml:6: trackers[0].on_demand.listen: is the API's listen (127.0.0.1:8000), got "localhost:8000"`, ErrDuplicate},
		{"ListenTwice", head + "      listen: 127.0.0.1:8080\n      upstream: 127.0.0.1:9002\n  - name: wiki\n    kind: plain\n    on_demand: {listen: 127.0.0.1:8080, upstream: 127.0.0.1:9003}\n",
			`rouse.yaml:9: trackers[1].on_demand.listen: is already trackers[0].on_demand.listen (line 5), got "127.0.0.1:8080"`, ErrDuplicate},
		{"AlwaysOnRequiresOnDemand", head + "      listen: 127.0.0.1:8080\n      upstream: 127.0.0.1:9002\n  - name: poller\n    kind: plain\n    depends_on: [blog]\n",
			`rouse.yaml:9: trackers[1].depends_on[0]: starts on demand (it has on_demand), and poller runs all the time: it would wait for it forever, got "blog"; give poller an on_demand key too, or make the dependency optional`, ErrInvalidValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("rouse.yaml", []byte(tt.src), testKinds)
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			if err.Error() != tt.want {
				t.Fatalf("got  %s\nwant %s", err, tt.want)
			}
			if !errors.Is(err, tt.is) {
				t.Fatalf("not %v", tt.is)
			}
		})
	}
	t.Run("NonLoopbackAllowed", func(t *testing.T) {
		parseOK(t, head+"      listen: 0.0.0.0:8080\n      upstream: 127.0.0.1:9002\n      allow_non_loopback: true\n")
	})
	t.Run("OptionalDependencyOnOnDemandIsFine", func(t *testing.T) {
		parseOK(t, head+"      listen: 127.0.0.1:8080\n      upstream: 127.0.0.1:9002\n  - name: poller\n    kind: plain\n    depends_on: [{name: blog, optional: true}]\n")
	})
}

func TestOnDemandManaged(t *testing.T) {
	c := parseOK(t, `
trackers:
  - {name: db, kind: plain}
  - {name: cache, kind: plain}
  - {name: sidecar, kind: plain}
  - {name: shared, kind: plain}
  - name: blog
    kind: plain
    depends_on: [db, cache, {name: sidecar, optional: true}, shared]
    on_demand: {listen: 127.0.0.1:8080, upstream: 127.0.0.1:9002}
  - {name: backup, kind: plain, depends_on: [shared]}
  - {name: lonely, kind: plain}
  - {name: deep, kind: plain}
  - {name: wiki, kind: plain, depends_on: [deep], on_demand: {listen: 127.0.0.1:8081, upstream: 127.0.0.1:9003}}
  - {name: wikidep, kind: plain, depends_on: [deep]}
  - {name: mid, kind: plain, depends_on: [cache]}
  - {name: app2, kind: plain, depends_on: [mid], on_demand: {listen: 127.0.0.1:8082, upstream: 127.0.0.1:9004}}
`)
	got := c.OnDemandManaged()
	var names []string
	for _, t := range c.Trackers {
		if got[t.Name] {
			names = append(names, t.Name)
		}
	}
	// shared: backup runs all the time and needs it; deep: wikidep does.
	want := []string{"db", "cache", "sidecar", "blog", "wiki", "mid", "app2"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("managed %s, want %s", strings.Join(names, ","), strings.Join(want, ","))
	}
	if m := parseOK(t, "trackers:\n  - {name: a, kind: plain}\n  - {name: b, kind: plain, depends_on: [a]}\n").OnDemandManaged(); len(m) != 0 {
		t.Fatalf("without on_demand nothing is managed, got %v", m)
	}
}

// A typo inside on_demand or health does not hide the other problems of
// the same mapping: `config check` names them all in one run, not one
// more after each fix.
func TestErrorsInsideOnDemandAndHealthAllAtOnce(t *testing.T) {
	src := "trackers:\n  - name: blog\n    kind: plain\n" +
		"    health: {check: {tcp: \"127.0.0.1:1\"}, retires: 2, start_period: -1s}\n" +
		"    on_demand:\n      listen: 127.0.0.1:8080\n      upstrem: 127.0.0.1:9002\n      mode: htp\n      idle_stop: 20\n"
	_, err := Parse("rouse.yaml", []byte(src), testKinds)
	if err == nil {
		t.Fatal("parsed")
	}
	for _, want := range []string{
		`rouse.yaml:4: trackers[0].health.retires: unknown key; did you mean "retries"?`,
		`rouse.yaml:4: trackers[0].health.start_period: must not be negative, got "-1s"`,
		`rouse.yaml:5: trackers[0].on_demand.upstream: required`,
		`rouse.yaml:7: trackers[0].on_demand.upstrem: unknown key; did you mean "upstream"?`,
		`rouse.yaml:8: trackers[0].on_demand.mode: must be one of http, tcp, got "htp"`,
		`rouse.yaml:9: trackers[0].on_demand.idle_stop: must be a duration like "10s" or "1m30s", got "20"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if n := strings.Count(err.Error(), "on_demand.idle_stop:"); n != 1 {
		t.Errorf("idle_stop reported %d times:\n%v", n, err)
	}
}
