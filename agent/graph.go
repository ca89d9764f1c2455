package agent

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// node is one component in the dependency graph.
type node struct {
	name     string
	required []string // must be ready before this one starts
	optional []string // ordered before it when both start, never block it
}

// deps is every dependency of n, required first.
func (n node) deps() []string {
	return append(append([]string{}, n.required...), n.optional...)
}

// graph is the dependency graph of the components. It is immutable once
// built; a config change builds a new one.
type graph struct {
	order      []string            // a topological order, stable with config order
	index      map[string]int      // name -> position in config order
	nodes      map[string]node     // by name
	dependents map[string][]string // name -> names that require it
}

// newGraph builds the graph, rejecting unknown dependencies and cycles
// (config validates too; this is the agent's own guard).
func newGraph(nodes []node) (*graph, error) {
	g := &graph{index: map[string]int{}, nodes: map[string]node{}, dependents: map[string][]string{}}
	for i, n := range nodes {
		if _, dup := g.nodes[n.name]; dup {
			return nil, fmt.Errorf("component %q defined twice", n.name)
		}
		g.index[n.name] = i
		g.nodes[n.name] = n
	}
	for _, n := range nodes {
		for _, d := range n.deps() {
			if _, ok := g.nodes[d]; !ok {
				return nil, fmt.Errorf("component %q depends on unknown component %q", n.name, d)
			}
		}
		for _, d := range n.required {
			g.dependents[d] = append(g.dependents[d], n.name)
		}
	}
	// Kahn's algorithm over required and optional edges, picking the
	// earliest in config order among the ready ones so the order is stable.
	indeg := map[string]int{}
	out := map[string][]string{}
	for _, n := range nodes {
		for _, d := range n.deps() {
			indeg[n.name]++
			out[d] = append(out[d], n.name)
		}
	}
	var queue []string
	for _, n := range nodes {
		if indeg[n.name] == 0 {
			queue = append(queue, n.name)
		}
	}
	for len(queue) > 0 {
		sort.Slice(queue, func(i, j int) bool { return g.index[queue[i]] < g.index[queue[j]] })
		n := queue[0]
		queue = queue[1:]
		g.order = append(g.order, n)
		for _, m := range out[n] {
			indeg[m]--
			if indeg[m] == 0 {
				queue = append(queue, m)
			}
		}
	}
	if len(g.order) != len(nodes) {
		return nil, fmt.Errorf("dependency cycle: %s", g.findCycle())
	}
	return g, nil
}

// findCycle names one cycle as "a -> b -> a".
func (g *graph) findCycle() string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var found []string
	var visit func(string) bool
	visit = func(n string) bool {
		color[n] = grey
		stack = append(stack, n)
		for _, d := range g.nodes[n].deps() {
			switch color[d] {
			case grey:
				for i, s := range stack {
					if s == d {
						found = append(append([]string{}, stack[i:]...), d)
						return true
					}
				}
			case white:
				if visit(d) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return false
	}
	names := make([]string, 0, len(g.nodes))
	for n := range g.nodes {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return g.index[names[i]] < g.index[names[j]] })
	for _, n := range names {
		if color[n] == white && visit(n) {
			break
		}
	}
	return strings.Join(found, " -> ")
}

// planStep is one component's place in an estimated restore.
type planStep struct {
	name     string
	waitsFor []string
	start    time.Duration // estimated start, from the wake
	dur      time.Duration
	skipped  bool
}

// plan estimates a restore: each component starts when its required,
// active dependencies are estimated ready (optional ones never block), and
// takes est(name). Skipped components take no time and hold nobody up
// (their dependents would wait on them forever; the plan shows them as
// waiting on a stopped component). It returns the steps in start order and
// the critical path.
func (g *graph) plan(est func(string) time.Duration, skipped func(string) bool) ([]planStep, time.Duration, []string) {
	return g.planIn(est, skipped, nil)
}

// planIn is plan over the components in only (nil: all): the others are
// left out, as if they were not there (a chain's plan).
func (g *graph) planIn(est func(string) time.Duration, skipped, only func(string) bool) ([]planStep, time.Duration, []string) {
	finish := map[string]time.Duration{}
	via := map[string]string{}
	steps := make([]planStep, 0, len(g.order))
	for _, n := range g.order {
		if only != nil && !only(n) {
			continue
		}
		st := planStep{name: n, waitsFor: g.nodes[n].required, skipped: skipped(n)}
		for _, d := range g.nodes[n].required {
			if finish[d] > st.start {
				st.start = finish[d]
				via[n] = d
			}
		}
		if !st.skipped {
			st.dur = est(n)
		}
		finish[n] = st.start + st.dur
		steps = append(steps, st)
	}
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].start < steps[j].start })
	var total time.Duration
	last := ""
	for _, n := range g.order {
		if only != nil && !only(n) {
			continue
		}
		if finish[n] > total || last == "" {
			total, last = finish[n], n
		}
	}
	var path []string
	for n := last; n != ""; n = via[n] {
		path = append([]string{n}, path...)
	}
	return steps, total, path
}
