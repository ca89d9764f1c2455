package main

import (
	"context"
	"strings"
	"testing"

	"github.com/rouse-dev/rouse/agent/api/apitest"
	"github.com/rouse-dev/rouse/wire"
)

func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{
		"bash":       "# bash completion V2 for rouse",
		"zsh":        "#compdef rouse",
		"fish":       "complete -c rouse",
		"powershell": "Register-ArgumentCompleter",
	} {
		t.Run("The "+shell+" script is printed", func(t *testing.T) {
			out, code := runCLI(t, "completion", shell)
			if code != 0 || !strings.Contains(out, want) {
				t.Errorf("exit %d, output lacks %q:\n%.300s", code, want, out)
			}
		})
	}
	t.Run("An unknown shell is bad usage", func(t *testing.T) {
		out, code := runCLI(t, "completion", "tcsh")
		if code != 2 || !strings.Contains(out, "want bash, zsh, fish or powershell") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
	t.Run("Component names complete from the running agent", func(t *testing.T) {
		b := &apitest.Backend{ServicesFunc: func(context.Context) []wire.Service {
			return []wire.Service{{Name: "tunnel", Kind: "exec", State: "ready"}, {Name: "scrobbles", Kind: "http", State: "degraded"}}
		}}
		addr, data, _ := startAPI(t, b)
		out, code := runCLI(t, "__complete", "--data", data, "--listen", addr, "restart", "tu")
		if code != 0 || !strings.Contains(out, "tunnel\texec, ready") || strings.Contains(out, "scrobbles") {
			t.Errorf("exit %d, want only tunnel:\n%s", code, out)
		}
	})
	t.Run("With no agent nothing completes and nothing breaks", func(t *testing.T) {
		out, code := runCLI(t, "__complete", "--data", t.TempDir(), "--listen", "127.0.0.1:1", "stop", "")
		if code != 0 || strings.Contains(out, "error") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
}
