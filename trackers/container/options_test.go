package container

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rouse-dev/rouse/internal/engine"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestValidate(t *testing.T) {
	yes := true
	cases := []struct {
		name string
		mod  func(*Options)
		key  string // "" means valid
		msg  string
	}{
		{"AContainerByName", func(o *Options) { o.Container = "mysql-dev" }, "", ""},
		{"AComposeService", func(o *Options) { o.Compose = Compose{Project: "blog", Service: "db"} }, "", ""},
		{"NeitherIsAnError", func(o *Options) {}, "container", "is required"},
		{"BothIsAnError", func(o *Options) { o.Container = "x"; o.Compose = Compose{Project: "p", Service: "s"} }, "compose", "not both"},
		{"HalfAComposeIsAnError", func(o *Options) { o.Compose = Compose{Project: "p"} }, "compose", "needs both"},
		{"ANameWithASlashIsAnError", func(o *Options) { o.Container = "a/b" }, "container", "not a container name"},
		{"AnEngineWithoutAScheme", func(o *Options) { o.Container = "x"; o.Engine = "/var/run/docker.sock" }, "engine", "want unix://"},
		{"APodmanSocket", func(o *Options) { o.Container = "x"; o.Engine = "unix:///run/user/1000/podman/podman.sock" }, "", ""},
		{"TwoChecksAreAnError", func(o *Options) { o.Container = "x"; o.Ready.Health = &yes; o.Ready.TCP = "127.0.0.1:1" }, "ready", "at most one"},
		{"ABadTCPAddress", func(o *Options) { o.Container = "x"; o.Ready.TCP = "nohost" }, "ready.tcp", "host:port"},
		{"ABadURL", func(o *Options) { o.Container = "x"; o.Ready.HTTP = "ftp://x/" }, "ready.http", "http(s) URL"},
		{"AnEmptyExec", func(o *Options) { o.Container = "x"; o.Ready.Exec = []string{" "} }, "ready.exec", "must not be empty"},
		{"ATinyInterval", func(o *Options) { o.Container = "x"; o.ReadyInterval = time.Millisecond }, "ready_interval", "at least 10ms"},
		{"ABackwardsBackoff", func(o *Options) {
			o.Container = "x"
			o.RestartBackoff = Backoff{Initial: time.Minute, Max: time.Second}
		}, "restart_backoff", "initial <= max"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := DefaultOptions()
			c.mod(o)
			errs := o.Validate()
			if c.key == "" {
				if len(errs) != 0 {
					t.Fatalf("want valid, got %v", errs)
				}
				return
			}
			for _, e := range errs {
				if e.Key == c.key && strings.Contains(e.Msg, c.msg) {
					return
				}
			}
			t.Fatalf("want %s: …%s…, got %v", c.key, c.msg, errs)
		})
	}
}

func TestHealthModeFollowsTheContainer(t *testing.T) {
	yes, no := true, false
	with := engine.Container{Config: &engine.Config{Healthcheck: &engine.HealthConfig{Test: []string{"CMD-SHELL", "true"}}}}
	none := engine.Container{Config: &engine.Config{Healthcheck: &engine.HealthConfig{Test: []string{"NONE"}}}}
	without := engine.Container{Config: &engine.Config{}}
	cases := []struct {
		name    string
		ready   Ready
		info    engine.Container
		want    bool
		wantErr bool
	}{
		{"ItsHealthcheckDecidesByDefault", Ready{}, with, true, false},
		{"NoHealthcheckMeansRunningIsReady", Ready{}, without, false, false},
		{"HealthcheckNONEIsNone", Ready{}, none, false, false},
		{"ATCPCheckWins", Ready{TCP: "127.0.0.1:1"}, with, false, false},
		{"HealthFalseIgnoresIt", Ready{Health: &no}, with, false, false},
		{"HealthTrueWithoutOneIsAnError", Ready{Health: &yes}, without, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := DefaultOptions()
			o.Container = "x"
			o.Ready = c.ready
			tr := &Tracker{opts: *o}
			got, err := tr.healthMode(c.info)
			if (err != nil) != c.wantErr || got != c.want {
				t.Fatalf("healthMode = %v, %v; want %v, error %v", got, err, c.want, c.wantErr)
			}
		})
	}
}
