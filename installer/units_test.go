package installer

import (
	"encoding/xml"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	exe := "/opt/my tools/rouse"
	t.Run("UserUnitStartsAtLoginWithNotifyAndWatchdog", func(t *testing.T) {
		u := mustRender(t, UserUnit, Values{Path: exe, Arguments: UserArguments})
		wantLines(t, u,
			"Description="+Description,
			`ConditionFileIsExecutable=/opt/my\x20tools/rouse`,
			`ExecStart=/opt/my\x20tools/rouse "run"`,
			"Type=notify", "NotifyAccess=main", "WatchdogSec=30", "Restart=always", "RestartSec=2",
			"RestartPreventExitStatus=78", "KillMode=mixed", "Delegate=yes", "WantedBy=default.target",
		)
		noLines(t, u, "WantedBy=multi-user.target", "RestartSec=120", "ProtectSystem=strict", "User=",
			"RestartPreventExitStatus=2")
	})
	t.Run("SystemUnitIsHardenedAndWritesOnlyItsDataDir", func(t *testing.T) {
		u := mustRender(t, SystemUnit, Values{Path: "/usr/bin/rouse", Arguments: SystemArguments})
		wantLines(t, u,
			`ExecStart=/usr/bin/rouse "run" "--config" "/etc/rouse/rouse.yaml" "--data" "/var/lib/rouse"`,
			"Type=notify", "WatchdogSec=30", "Restart=always", "RestartSec=2",
			"RestartPreventExitStatus=78", "KillMode=mixed", "Delegate=yes",
			"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=read-only", "PrivateTmp=yes",
			"StateDirectory=rouse", "ReadWritePaths=/var/lib/rouse", "WantedBy=multi-user.target",
		)
		noLines(t, u, "WantedBy=default.target", "RestartSec=120", "RestartPreventExitStatus=2")
	})
	t.Run("QuotesInArgumentsAreEscapedAsTheLibraryDoes", func(t *testing.T) {
		u := mustRender(t, UserUnit, Values{Path: "/bin/rouse", Arguments: []string{"run", `--listen`, `a"b`}})
		wantLines(t, u, `ExecStart=/bin/rouse "run" "--listen" "a\"b"`)
	})
	t.Run("UnknownActionsAreRefused", func(t *testing.T) {
		_, err := Render("X={{UserName}}\n", Values{Path: "/bin/rouse"})
		if err == nil || !strings.Contains(err.Error(), "UserName") {
			t.Fatalf("err = %v, want an unsupported-action error naming UserName", err)
		}
	})
	t.Run("AMissingPathIsAnError", func(t *testing.T) {
		if _, err := Render(UserUnit, Values{}); err == nil {
			t.Fatal("rendered a unit with no executable")
		}
	})
}

// TestSystemdAnalyzeVerify runs systemd's own checker on both units, with
// ExecStart pointing at a real executable.
func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze not found (scripts/test-deps.sh installs package systemd): %v", err)
	}
	dir := t.TempDir()
	exe := filepath.Join(dir, "bin dir", "rouse")
	writeExe(t, exe, "#!/bin/sh\nexit 0\n")
	runtime := filepath.Join(dir, "runtime")
	if err := os.Mkdir(runtime, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, tmpl string
		args       []string
		flags      []string
	}{
		{"SystemUnitPasses", SystemUnit, SystemArguments, nil},
		{"UserUnitPasses", UserUnit, UserArguments, []string{"--user"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := filepath.Join(dir, tc.name)
			if err := os.Mkdir(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			unit := filepath.Join(sub, Name+".service")
			if err := os.WriteFile(unit, []byte(mustRender(t, tc.tmpl, Values{Path: exe, Arguments: tc.args})), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(analyze, append(tc.flags, "verify", unit)...)
			cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+runtime, "SYSTEMD_LOG_COLOR=0")
			out, err := cmd.CombinedOutput()
			// verify exits 0 on many warnings: any output about our unit fails.
			if err != nil || strings.Contains(string(out), Name+".service") {
				t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
			}
		})
	}
	t.Run("AMisspelledDirectiveIsCaught", func(t *testing.T) {
		// Proves the check above can fail: systemd-analyze reports a bad line.
		sub := filepath.Join(dir, "bad")
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		unit := filepath.Join(sub, Name+".service")
		bad := strings.Replace(mustRender(t, SystemUnit, Values{Path: exe, Arguments: SystemArguments}), "Type=notify", "Type=notfy", 1)
		if err := os.WriteFile(unit, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		out, _ := exec.Command(analyze, "verify", unit).CombinedOutput()
		if !strings.Contains(string(out), Name+".service") {
			t.Fatalf("systemd-analyze said nothing about a bad Type=: %q", out)
		}
	})
}

func TestLaunchdPlist(t *testing.T) {
	logs := "/Users/a & b/Library/Logs/rouse"
	p := mustRender(t, LaunchdPlist, Values{
		Name: Name, Path: "/Applications/Rouse & Co/rouse", Arguments: UserArguments,
		StandardOutPath: logs + "/rouse.out.log", StandardErrorPath: logs + "/rouse.err.log",
	})
	d, err := parsePlist(p)
	if err != nil {
		t.Fatalf("the plist does not parse: %v\n%s", err, p)
	}
	want := map[string]any{
		"Label":             Name,
		"ProgramArguments":  []string{"/Applications/Rouse & Co/rouse", "run"},
		"KeepAlive":         true,
		"RunAtLoad":         true,
		"ThrottleInterval":  "5",
		"StandardOutPath":   logs + "/rouse.out.log",
		"StandardErrorPath": logs + "/rouse.err.log",
	}
	for k, v := range want {
		got, ok := d[k]
		if !ok {
			t.Errorf("key %s missing", k)
			continue
		}
		if s, isSlice := v.([]string); isSlice {
			if g, _ := got.([]string); !slices.Equal(g, s) {
				t.Errorf("%s = %v, want %v", k, got, v)
			}
			continue
		}
		if got != v {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
}

// parsePlist reads the top-level dict of a property list: strings, integers
// (as their text), booleans and arrays of strings.
func parsePlist(s string) (map[string]any, error) {
	dec := xml.NewDecoder(strings.NewReader(s))
	out := map[string]any{}
	var key string
	var inArray bool
	var arr []string
	depth := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if depth != 0 {
				return nil, errors.New("unbalanced elements")
			}
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		switch el := tok.(type) {
		case xml.StartElement:
			depth++
			switch el.Name.Local {
			case "key", "string", "integer":
				var text string
				if err := dec.DecodeElement(&text, &el); err != nil {
					return nil, err
				}
				depth--
				switch {
				case el.Name.Local == "key":
					key = text
				case inArray:
					arr = append(arr, text)
				default:
					out[key] = text
				}
			case "true", "false":
				out[key] = el.Name.Local == "true"
			case "array":
				inArray, arr = true, nil
			}
		case xml.EndElement:
			depth--
			if el.Name.Local == "array" {
				out[key], inArray = arr, false
			}
		}
	}
}

func mustRender(t *testing.T, tmpl string, v Values) string {
	t.Helper()
	s, err := Render(tmpl, v)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func wantLines(t *testing.T, text string, lines ...string) {
	t.Helper()
	have := strings.Split(text, "\n")
	for _, l := range lines {
		if !slices.Contains(have, l) {
			t.Errorf("missing line %q in:\n%s", l, text)
		}
	}
}

func noLines(t *testing.T, text string, lines ...string) {
	t.Helper()
	have := strings.Split(text, "\n")
	for _, l := range lines {
		for _, h := range have {
			if strings.HasPrefix(h, l) {
				t.Errorf("unexpected line %q in:\n%s", h, text)
			}
		}
	}
}

func writeExe(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
}
