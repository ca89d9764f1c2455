package main

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rouse-dev/rouse/agent/config"
)

func TestBootKeys(t *testing.T) {
	write := func(t *testing.T, body string) string {
		p := filepath.Join(t.TempDir(), "rouse.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("TopLevelLinesAreReadWithoutParsingTheRest", func(t *testing.T) {
		p := write(t, "# comment\nlisten: \"127.0.0.1:9100\"  # the API\ndata: /srv/rouse\nallow_non_loopback: true\nmax_event_streams: 7\ntrackers:\n  - name: x\n    listen: 1.2.3.4:5\n    data: /nope\n")
		k := peekBootKeys(p)
		if k != (bootKeys{Listen: "127.0.0.1:9100", Data: "/srv/rouse", AllowNonLoopback: true, MaxEventStreams: 7}) {
			t.Fatalf("peek = %+v", k)
		}
	})
	t.Run("AMissingFileOrNoPathGivesDefaults", func(t *testing.T) {
		if k := peekBootKeys(filepath.Join(t.TempDir(), "none.yaml")); k != (bootKeys{}) {
			t.Fatalf("peek = %+v", k)
		}
		if k := peekBootKeys(""); k != (bootKeys{}) {
			t.Fatalf("peek = %+v", k)
		}
	})
	t.Run("AKeyTheReadCannotSeeIsABadConfig", func(t *testing.T) {
		p := write(t, "{listen: \"127.0.0.1:9100\"}\n")
		k := peekBootKeys(p)
		cfg, err := config.Load(p, builtinKinds())
		if err != nil {
			t.Fatal(err)
		}
		err = k.agrees(cfg, p, true, true)
		var ce configError
		if err == nil || !errors.As(err, &ce) || !strings.Contains(err.Error(), "listen: 127.0.0.1:9100") {
			t.Fatalf("agrees = %v, want a config error naming the line to write", err)
		}
		if err := k.agrees(cfg, p, false, true); err != nil {
			t.Fatalf("with --listen given the config's listen does not matter: %v", err)
		}
	})
	t.Run("TheEmbeddedDefaultAgrees", func(t *testing.T) {
		cfg, err := config.Parse("default", config.DefaultYAML, builtinKinds())
		if err != nil {
			t.Fatal(err)
		}
		if err := peekBootKeys("").agrees(cfg, "default", true, true); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSwitchHandler(t *testing.T) {
	var first, second bytes.Buffer
	h, _ := newHandler(&first, "info", "text")
	sw := newSwitchHandler(h)
	log := slog.New(sw).With("component", "x").WithGroup("g")
	log.Debug("hidden")
	log.Info("one", "k", 1)
	h2, _ := newHandler(&second, "debug", "json")
	sw.Switch(h2)
	log.Debug("two", "k", 2)
	if got := first.String(); strings.Contains(got, "hidden") || !strings.Contains(got, "component=x") || !strings.Contains(got, "g.k=1") {
		t.Fatalf("before the switch: %q", got)
	}
	if got := second.String(); !strings.Contains(got, `"component":"x"`) || !strings.Contains(got, `"g":{"k":2}`) {
		t.Fatalf("after the switch a derived logger wrote %q", got)
	}
}
