package agent

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestGraph(t *testing.T) {
	t.Run("OrdersDependenciesFirstAndKeepsConfigOrderOtherwise", func(t *testing.T) {
		g, err := newGraph([]node{
			{name: "ws", required: []string{"tunnel"}},
			{name: "tunnel"},
			{name: "poller"},
			{name: "sink", optional: []string{"ws"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"tunnel", "ws", "poller", "sink"}
		if !slices.Equal(g.order, want) {
			t.Fatalf("order = %v, want %v", g.order, want)
		}
		if !slices.Equal(g.dependents["tunnel"], []string{"ws"}) {
			t.Fatalf("dependents of tunnel = %v", g.dependents["tunnel"])
		}
		if len(g.dependents["ws"]) != 0 {
			t.Fatalf("an optional dependency must not count as a dependent: %v", g.dependents["ws"])
		}
	})
	t.Run("NamesTheCycle", func(t *testing.T) {
		_, err := newGraph([]node{
			{name: "a", required: []string{"b"}},
			{name: "b", required: []string{"c"}},
			{name: "c", optional: []string{"a"}},
		})
		if err == nil || !strings.Contains(err.Error(), "a -> b -> c -> a") {
			t.Fatalf("err = %v, want the cycle a -> b -> c -> a", err)
		}
	})
	t.Run("RejectsUnknownDependencies", func(t *testing.T) {
		_, err := newGraph([]node{{name: "a", required: []string{"ghost"}}})
		if err == nil || !strings.Contains(err.Error(), `unknown component "ghost"`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("RejectsDuplicates", func(t *testing.T) {
		if _, err := newGraph([]node{{name: "a"}, {name: "a"}}); err == nil {
			t.Fatal("want an error for a duplicate name")
		}
	})
	t.Run("PlanFollowsTheCriticalPath", func(t *testing.T) {
		g, err := newGraph([]node{
			{name: "a"},
			{name: "b", required: []string{"a"}},
			{name: "c"},
			{name: "d", required: []string{"b", "c"}, optional: []string{"e"}},
			{name: "e"},
		})
		if err != nil {
			t.Fatal(err)
		}
		est := map[string]time.Duration{"a": 100 * time.Millisecond, "b": 200 * time.Millisecond, "c": 50 * time.Millisecond, "d": 10 * time.Millisecond, "e": time.Second}
		steps, total, path := g.plan(func(n string) time.Duration { return est[n] }, func(string) bool { return false })
		if total != time.Second {
			t.Fatalf("total = %v, want 1s (e alone; d does not wait for its optional e)", total)
		}
		if !slices.Equal(path, []string{"e"}) {
			t.Fatalf("path = %v", path)
		}
		var d planStep
		for _, s := range steps {
			if s.name == "d" {
				d = s
			}
		}
		if d.start != 300*time.Millisecond {
			t.Fatalf("d starts at %v, want 300ms (after a then b)", d.start)
		}
		est["e"] = 0
		_, total, path = g.plan(func(n string) time.Duration { return est[n] }, func(string) bool { return false })
		if total != 310*time.Millisecond || !slices.Equal(path, []string{"a", "b", "d"}) {
			t.Fatalf("total %v path %v, want 310ms along a b d", total, path)
		}
	})
}
