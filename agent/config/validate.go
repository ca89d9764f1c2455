package config

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rouse-dev/rouse/internal/hostcheck"
	"github.com/rouse-dev/rouse/scheduler"
	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/wire"
)

// Reserved component names: the built-in components.
const (
	StoreName     = "store"
	SchedulerName = "scheduler"
)

// Reserved job names: the agent's built-in jobs (maintenance.schedule and
// maintenance.quick_check; "off" turns them off).
const (
	MaintenanceJob = "maintenance"
	QuickCheckJob  = "quick-check"
)

// validName reports whether s matches [A-Za-z0-9][A-Za-z0-9._-]{0,63}:
// a component or job name (they appear in URLs). Written out rather than
// a regexp, which would be compiled at every start.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// validEnvName reports whether s matches [A-Za-z_][A-Za-z0-9_]*.
func validEnvName(s string) bool {
	if len(s) == 0 || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '_' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// validator collects errors for one Validate call.
type validator struct {
	c     *Config
	kinds trackers.Kinds
	errs  Errors
}

func (v *validator) fail(key, value string, err error) {
	v.failHint(key, value, err, "")
}

func (v *validator) failHint(key, value string, err error, hint string) {
	v.errs = append(v.errs, &FieldError{File: v.c.Source, Line: v.c.Line(key), Key: key, Value: value, Err: err, Hint: hint})
}

// value is the text read at key, or fallback for a config built in code.
func (v *validator) value(key, fallback string) string {
	if _, n := lookup(v.c.root, key); n != nil && n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return fallback
}

func (v *validator) atLeast(key string, d, min time.Duration) {
	if d < min {
		v.fail(key, v.value(key, d.String()), fmt.Errorf("must be at least %s", min))
	}
}

// zeroOrAtLeast checks an override at parent.field: 0 means "use the
// default". The key is built only for an error (it runs for every tracker).
func (v *validator) zeroOrAtLeast(parent, field string, d, min time.Duration) {
	if d != 0 && d < min {
		key := parent + "." + field
		v.fail(key, v.value(key, d.String()), fmt.Errorf("must be 0 (the default) or at least %s", min))
	}
}

func (v *validator) oneOf(key, s string, allowed ...string) {
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	v.fail(key, v.value(key, s), wrapf(ErrInvalidValue, "must be one of %s", strings.Join(allowed, ", ")))
}

// Validate checks the whole config, each tracker's kind among kinds, and
// returns Errors holding every problem, or nil. Parse calls it; call it
// again after changing a config in code.
func (c *Config) Validate(kinds trackers.Kinds) error {
	v := &validator{c: c, kinds: kinds}
	v.listen()
	if c.MaxEventStreams < 1 || c.MaxEventStreams > 4096 {
		v.fail("max_event_streams", v.value("max_event_streams", strconv.Itoa(c.MaxEventStreams)), wrapf(ErrInvalidValue, "must be from 1 to 4096"))
	}
	if c.Data != "" && !filepath.IsAbs(c.Data) {
		msg := "must be an absolute path or start with ~/"
		if strings.HasPrefix(c.Data, "~") {
			msg = "must be an absolute path or start with ~/ (~user is not supported)"
		}
		v.fail("data", v.value("data", c.Data), wrapf(ErrInvalidValue, "%s", msg))
	}
	const minDeadline = 100 * time.Millisecond
	v.atLeast("deadlines.tracker", c.Deadlines.Tracker, minDeadline)
	v.atLeast("deadlines.scheduler", c.Deadlines.Scheduler, minDeadline)
	v.atLeast("deadlines.wake", c.Deadlines.Wake, minDeadline)
	v.atLeast("deadlines.auto_min", c.Deadlines.AutoMin, minDeadline)
	if c.Deadlines.AutoMax < c.Deadlines.AutoMin {
		v.fail("deadlines.auto_max", v.value("deadlines.auto_max", c.Deadlines.AutoMax.String()), fmt.Errorf("must be at least deadlines.auto_min (%s)", c.Deadlines.AutoMin))
	}
	v.atLeast("heartbeat.initial", c.Heartbeat.Initial, minDeadline)
	if c.Heartbeat.Max < c.Heartbeat.Initial {
		v.fail("heartbeat.max", v.value("heartbeat.max", c.Heartbeat.Max.String()),
			fmt.Errorf("must be at least heartbeat.initial (%s)", c.Heartbeat.Initial))
	}
	v.atLeast("sleep.budget", c.Sleep.Budget, minDeadline)
	v.atLeast("sleep.pause_grace", c.Sleep.PauseGrace, 10*time.Millisecond)
	if c.Sleep.PauseGrace >= c.Sleep.Budget && c.Sleep.Budget >= minDeadline {
		v.fail("sleep.pause_grace", v.value("sleep.pause_grace", c.Sleep.PauseGrace.String()),
			fmt.Errorf("must be less than sleep.budget (%s)", c.Sleep.Budget))
	}
	v.atLeast("shutdown_timeout", c.ShutdownTimeout, minDeadline)
	v.schedule("maintenance.schedule", c.Maintenance.Schedule, "")
	v.atLeast("maintenance.retention", c.Maintenance.Retention, time.Hour)
	if c.Maintenance.QuickCheck != "off" {
		v.schedule("maintenance.quick_check", c.Maintenance.QuickCheck, "")
	}
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "text", "json")
	v.zeroOrAtLeast("scheduler", "deadline", c.Scheduler.Deadline, minDeadline)
	v.trackers()
	v.onDemandLinks()
	v.cycles()
	v.jobs()
	if len(v.errs) == 0 {
		return nil
	}
	sortErrors(v.errs)
	return v.errs
}

func (v *validator) listen() {
	c := v.c
	val := v.value("listen", c.Listen)
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		v.fail("listen", val, wrapf(ErrInvalidValue, "must be host:port like %q", wire.DefaultListen))
		return
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		v.fail("listen", val, wrapf(ErrInvalidValue, "must have a port number from 0 to 65535"))
		return
	}
	if c.AllowNonLoopback {
		return
	}
	if err := loopback(host); err != nil {
		v.failHint("listen", val, err, "set allow_non_loopback: true to listen on "+describeHost(host))
	}
}

// loopback applies the rule `rouse run` binds by (hostcheck.LoopbackBind:
// "localhost" counts only when it resolves to loopback addresses alone)
// to a listen host.
func loopback(host string) error {
	if _, err := hostcheck.LoopbackBind(context.Background(), host); err != nil {
		if strings.EqualFold(host, "localhost") {
			return wrapf(ErrNotLoopback, "must be a loopback address (127.0.0.1, [::1] or localhost): %v", err)
		}
		return wrapf(ErrNotLoopback, "must be a loopback address (127.0.0.1, [::1] or localhost)")
	}
	return nil
}

func describeHost(host string) string {
	if host == "" {
		return "every interface"
	}
	return host
}

const cronHint = `must be a cron expression like "0 3 * * *" or a descriptor like "@daily" or "@every 5m"`

func (v *validator) schedule(key, spec, tz string) {
	if spec == "" {
		v.fail(key, "", wrapf(ErrRequired, `required: a cron expression like "0 3 * * *" or a descriptor like "@daily" or "@every 5m"`))
		return
	}
	var loc *time.Location
	if tz != "" {
		loc, _ = time.LoadLocation(tz) // checked by the caller
	}
	if _, _, err := scheduler.ParseIn(spec, loc); err != nil {
		v.failHint(key, v.value(key, spec), wrapf(ErrInvalidValue, "%s", cronHint), err.Error())
	}
}

func knownKinds(kinds trackers.Kinds) string {
	ks := kinds.Names()
	if len(ks) == 0 {
		return "no kinds are known"
	}
	return "known kinds: " + strings.Join(ks, ", ")
}

func (v *validator) trackers() {
	c := v.c
	first := make(map[string]int, len(c.Trackers)) // name → index of its first use
	for i := range c.Trackers {
		t := &c.Trackers[i]
		key := "trackers[" + strconv.Itoa(i) + "]"
		switch {
		case t.Name == "":
			v.fail(key+".name", "", wrapf(ErrRequired, "required: every tracker needs a name"))
		case !validName(t.Name):
			v.fail(key+".name", t.Name, wrapf(ErrInvalidValue, "must be letters, digits, '.', '_' or '-', starting with a letter or digit, at most 64 characters"))
		case t.Name == StoreName || t.Name == SchedulerName:
			v.fail(key+".name", t.Name, wrapf(ErrDuplicate, "is reserved for the built-in %s component", t.Name))
		default:
			if prev, dup := first[t.Name]; dup {
				pk := "trackers[" + strconv.Itoa(prev) + "]"
				v.fail(key+".name", t.Name, wrapf(ErrDuplicate, "duplicate name, first used by %s (line %d)", pk, c.Line(pk+".name")))
			} else {
				first[t.Name] = i
			}
		}
		_, ok := v.kinds.Lookup(t.Kind)
		switch {
		case t.Kind == "":
			v.failHint(key+".kind", "", ErrRequired, knownKinds(v.kinds))
		case !ok:
			v.failHint(key+".kind", t.Kind, ErrUnknownKind, knownKinds(v.kinds))
		}
		v.zeroOrAtLeast(key, "deadline", t.Deadline, 100*time.Millisecond)
		if t.StartLimit < 0 || t.StartLimit > MaxStartLimit {
			v.fail(key+".start_limit", v.value(key+".start_limit", strconv.Itoa(t.StartLimit)), wrapf(ErrInvalidValue, "must be 0 (the default, %d) or from 1 to %d", DefaultStartLimit, MaxStartLimit))
		}
		v.zeroOrAtLeast(key, "start_window", t.StartWindow, time.Second)
		if t.OnDemand != nil {
			v.onDemand(key+".on_demand", t.OnDemand)
		}
		if t.Health != nil {
			v.health(key, t, ok)
		}
		if ok && t.Options != nil {
			if val, isV := t.Options.(trackers.Validator); isV {
				for _, fe := range val.Validate() {
					k := key
					if fe.Key != "" {
						k = key + "." + fe.Key
					}
					value := ""
					if !strings.Contains(fe.Msg, "got ") {
						value = v.value(k, "")
					}
					v.fail(k, value, wrapf(ErrInvalidValue, "%s", fe.Msg))
				}
			}
		}
	}
	names := make(map[string]bool, len(c.Trackers)+2)
	names[StoreName], names[SchedulerName] = true, true
	for _, t := range c.Trackers {
		names[t.Name] = true
	}
	for i := range c.Trackers {
		t := &c.Trackers[i]
		seen := map[string]bool{}
		for j, d := range t.DependsOn {
			if d.Name != "" && names[d.Name] && !seen[d.Name] && !(d.Optional && d.Restart) &&
				(d.Name != SchedulerName || d.Optional || c.SchedulerEnabled()) {
				seen[d.Name] = true
				continue // nothing to report: the key is not built
			}
			dk := "trackers[" + strconv.Itoa(i) + "].depends_on[" + strconv.Itoa(j) + "]"
			switch {
			case d.Name == "":
				v.fail(dk, "", wrapf(ErrRequired, "required: the name of a component"))
			case !names[d.Name]:
				v.failHint(dk, d.Name, ErrUnknownDep, "known: "+strings.Join(sortedKeys(names), ", "))
			case seen[d.Name]:
				v.fail(dk, d.Name, wrapf(ErrDuplicate, "listed twice"))
			case d.Optional && d.Restart:
				v.fail(dk+".restart", "true", wrapf(ErrInvalidValue, "applies to a required dependency: an optional one is not waited for"))
			case d.Name == SchedulerName && !d.Optional && !c.SchedulerEnabled():
				v.failHint(dk, d.Name, wrapf(ErrUnknownDep, "the scheduler is disabled"),
					"enable it (scheduler.enabled: true) or make the dependency optional")
			}
			seen[d.Name] = true
		}
	}
}

// onDemand checks one tracker's on_demand key (key is its path).
func (v *validator) onDemand(key string, o *OnDemand) {
	lk := key + ".listen"
	if o.Listen == "" {
		v.fail(lk, "", wrapf(ErrRequired, "required: the host:port rouse listens on for this component, like \"127.0.0.1:8080\""))
	} else if host, ok := v.hostPort(lk, o.Listen, false); ok && !o.AllowNonLoopback {
		if err := loopback(host); err != nil {
			v.failHint(lk, v.value(lk, o.Listen), err, "set on_demand.allow_non_loopback: true to listen on "+describeHost(host))
		}
	}
	uk := key + ".upstream"
	if o.Upstream == "" {
		v.fail(uk, "", wrapf(ErrRequired, "required: the host:port the component serves on, like \"127.0.0.1:9002\""))
	} else if _, ok := v.hostPort(uk, o.Upstream, true); ok && o.Listen != "" && sameAddr(o.Listen, o.Upstream) {
		v.fail(uk, v.value(uk, o.Upstream), wrapf(ErrInvalidValue, "must not be on_demand.listen: rouse would forward to itself"))
	}
	v.oneOf(key+".mode", o.Mode, OnDemandHTTP, OnDemandTCP)
	if o.IdleStop < 0 {
		ik := key + ".idle_stop"
		v.fail(ik, v.value(ik, o.IdleStop.String()), wrapf(ErrInvalidValue, "must be 0 (never) or a positive duration like \"30m\""))
	}
	v.oneOf(key+".on_failure", o.OnFailure, OnFailureRollback, OnFailureKeep)
}

// hostPort checks that s is host:port with a port from 1 to 65535 (a
// host is required when needHost) and returns the host.
func (v *validator) hostPort(key, s string, needHost bool) (string, bool) {
	host, port, err := net.SplitHostPort(s)
	if err != nil || (needHost && host == "") {
		v.fail(key, v.value(key, s), wrapf(ErrInvalidValue, "must be host:port like \"127.0.0.1:8080\""))
		return "", false
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		v.fail(key, v.value(key, s), wrapf(ErrInvalidValue, "must have a port number from 1 to 65535"))
		return "", false
	}
	return host, true
}

// sameAddr reports whether listening on a and on b would collide: the
// same port on the same host, or on every interface.
func sameAddr(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb || pa == "0" {
		return false
	}
	norm := func(h string) string {
		if strings.EqualFold(h, "localhost") {
			return "127.0.0.1"
		}
		if ip := net.ParseIP(h); ip != nil {
			if ip.IsUnspecified() {
				return ""
			}
			return ip.String()
		}
		return strings.ToLower(h)
	}
	ha, hb = norm(ha), norm(hb)
	return ha == hb || ha == "" || hb == ""
}

// onDemandLinks checks what on_demand keys imply across trackers: no two
// entry points (nor one and the API) on the same address, and no
// component that runs all the time requiring one that starts on demand.
func (v *validator) onDemandLinks() {
	c := v.c
	first := map[int]string{} // tracker index → its listen, for the collisions
	for i := range c.Trackers {
		o := c.Trackers[i].OnDemand
		if o == nil || o.Listen == "" {
			continue
		}
		lk := "trackers[" + strconv.Itoa(i) + "].on_demand.listen"
		if sameAddr(o.Listen, c.Listen) {
			v.fail(lk, v.value(lk, o.Listen), wrapf(ErrDuplicate, "is the API's listen (%s)", c.Listen))
			continue
		}
		for j := range i {
			if l, ok := first[j]; ok && sameAddr(o.Listen, l) {
				prev := "trackers[" + strconv.Itoa(j) + "].on_demand.listen"
				v.fail(lk, v.value(lk, o.Listen), wrapf(ErrDuplicate, "is already %s (line %d)", prev, c.Line(prev)))
				break
			}
		}
		first[i] = o.Listen
	}
	roots := map[string]bool{}
	for _, t := range c.Trackers {
		if t.OnDemand != nil {
			roots[t.Name] = true
		}
	}
	if len(roots) == 0 {
		return // no tracker starts on demand: no dependency can wait for one
	}
	managed := c.OnDemandManaged()
	for i, t := range c.Trackers {
		if managed[t.Name] {
			continue
		}
		for j, d := range t.DependsOn {
			if roots[d.Name] && !d.Optional {
				dk := "trackers[" + strconv.Itoa(i) + "].depends_on[" + strconv.Itoa(j) + "]"
				v.failHint(dk, d.Name, wrapf(ErrInvalidValue, "starts on demand (it has on_demand), and %s runs all the time: it would wait for it forever", t.Name),
					"give "+t.Name+" an on_demand key too, or make the dependency optional")
			}
		}
	}
}

// OnDemandManaged returns the trackers whose running follows on-demand
// chains: those with on_demand, and those every dependent of which
// (required or optional, at least one) is itself managed — a dependency
// only on-demand components need starts with them and stops with them.
// The others run all the time.
func (c *Config) OnDemandManaged() map[string]bool {
	managed := map[string]bool{}
	for _, t := range c.Trackers {
		if t.OnDemand != nil {
			managed[t.Name] = true
		}
	}
	if len(managed) == 0 {
		return managed
	}
	dependents := map[string][]string{}
	for _, t := range c.Trackers {
		for _, d := range t.DependsOn {
			dependents[d.Name] = append(dependents[d.Name], t.Name)
		}
	}
	// The greatest fixed point: start from every tracker that has a
	// dependent, drop those with a dependent that runs all the time.
	for _, t := range c.Trackers {
		if len(dependents[t.Name]) > 0 {
			managed[t.Name] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for _, t := range c.Trackers {
			if !managed[t.Name] || t.OnDemand != nil {
				continue
			}
			for _, d := range dependents[t.Name] {
				if !managed[d] {
					delete(managed, t.Name)
					changed = true
					break
				}
			}
		}
	}
	return managed
}

// health checks a tracker's health: entry; kindOK: its kind is known.
func (v *validator) health(key string, t *Tracker, kindOK bool) {
	h, hk := t.Health, key+".health"
	v.atLeast(hk+".interval", h.Interval, 100*time.Millisecond)
	v.atLeast(hk+".timeout", h.Timeout, 10*time.Millisecond)
	if h.Retries < 1 || h.Retries > MaxHealthRetries {
		v.fail(hk+".retries", v.value(hk+".retries", strconv.Itoa(h.Retries)), wrapf(ErrInvalidValue, "must be from 1 to %d", MaxHealthRetries))
	}
	if h.StartPeriod < 0 {
		v.fail(hk+".start_period", v.value(hk+".start_period", h.StartPeriod.String()), wrapf(ErrInvalidValue, "must not be negative"))
	}
	for _, fe := range h.Check.Validate("check") {
		value := ""
		if !strings.Contains(fe.Msg, "got ") {
			value = v.value(hk+"."+fe.Key, "")
		}
		v.fail(hk+"."+fe.Key, value, wrapf(ErrInvalidValue, "%s", fe.Msg))
	}
	if !kindOK {
		return // the kind is reported; what it checks cannot be known
	}
	own, refuse := false, ""
	if ho, isHO := t.Options.(trackers.HealthOptions); isHO {
		own, refuse = ho.HealthCheck()
	}
	switch {
	case refuse != "":
		v.fail(hk, "", wrapf(ErrInvalidValue, "%s", refuse))
	case !own && h.Check.Count() == 0:
		v.failHint(hk+".check", "", wrapf(ErrRequired, "required: this %s tracker has no readiness check of its own to repeat", t.Kind),
			"set health.check to {tcp: HOST:PORT}, {http: URL} or {command: [ARGV]}")
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// cycles reports every dependency cycle among trackers (optional edges
// included: the agent orders starts and shutdowns by them too), each once,
// starting from its member that comes first in the file.
func (v *validator) cycles() {
	c := v.c
	index := make(map[string]int, len(c.Trackers))
	for i, t := range c.Trackers {
		if _, dup := index[t.Name]; !dup && t.Name != "" {
			index[t.Name] = i
		}
	}
	const (
		white = iota
		gray
		black
	)
	color := make([]int, len(c.Trackers))
	var stack []int
	reported := map[string]bool{}
	var visit func(i int)
	visit = func(i int) {
		color[i] = gray
		stack = append(stack, i)
		for _, d := range c.Trackers[i].DependsOn {
			j, ok := index[d.Name]
			if !ok {
				continue
			}
			switch color[j] {
			case white:
				visit(j)
			case gray:
				var cyc []int
				for k := len(stack) - 1; k >= 0; k-- {
					if stack[k] == j {
						cyc = append(cyc, stack[k:]...)
						break
					}
				}
				v.reportCycle(cyc, reported)
			}
		}
		stack = stack[:len(stack)-1]
		color[i] = black
	}
	for i := range c.Trackers {
		if color[i] == white {
			visit(i)
		}
	}
}

// reportCycle reports the cycle through the trackers at indexes cyc (each
// depending on the next, the last on the first), once.
func (v *validator) reportCycle(cyc []int, reported map[string]bool) {
	if len(cyc) == 0 {
		return
	}
	start := 0
	for k := range cyc {
		if cyc[k] < cyc[start] {
			start = k
		}
	}
	rot := append(append([]int{}, cyc[start:]...), cyc[:start]...)
	names := make([]string, 0, len(rot)+1)
	for _, i := range rot {
		names = append(names, v.c.Trackers[i].Name)
	}
	names = append(names, names[0])
	path := strings.Join(names, " -> ")
	if reported[path] {
		return
	}
	reported[path] = true
	first := rot[0]
	next := v.c.Trackers[rot[1%len(rot)]].Name
	key := fmt.Sprintf("trackers[%d].depends_on", first)
	for j, d := range v.c.Trackers[first].DependsOn {
		if d.Name == next {
			key = fmt.Sprintf("trackers[%d].depends_on[%d]", first, j)
			break
		}
	}
	v.fail(key, "", wrapf(ErrCycle, "dependency cycle: %s", path))
}

func (v *validator) jobs() {
	c := v.c
	first := map[string]string{}
	for i := range c.Jobs {
		j := &c.Jobs[i]
		key := "jobs[" + strconv.Itoa(i) + "]"
		nk := key + ".name"
		switch {
		case j.Name == "":
			v.fail(nk, "", wrapf(ErrRequired, "required: every job needs a name"))
		case !validName(j.Name):
			v.fail(nk, j.Name, wrapf(ErrInvalidValue, "must be letters, digits, '.', '_' or '-', starting with a letter or digit, at most 64 characters"))
		default:
			if j.Name == MaintenanceJob || j.Name == QuickCheckJob {
				v.fail(nk, j.Name, wrapf(ErrDuplicate, "%q is the name of a built-in job; choose another", j.Name))
			} else if prev, dup := first[j.Name]; dup {
				v.fail(nk, j.Name, wrapf(ErrDuplicate, "duplicate job name, first used by %s (line %d)", parentKey(prev), c.Line(prev)))
			} else {
				first[j.Name] = nk
			}
		}
		tzOK := true
		if j.Timezone != "" {
			if _, err := time.LoadLocation(j.Timezone); err != nil {
				tzOK = false
				v.fail(key+".timezone", v.value(key+".timezone", j.Timezone), wrapf(ErrInvalidValue, `must be an IANA time zone like "Europe/Paris" or "UTC"`))
			}
		}
		if j.Schedule == "" {
			v.schedule(key+".schedule", "", "") // required
		}
		for name := range j.Env {
			if !validEnvName(name) {
				v.fail(key+".env."+name, "", wrapf(ErrInvalidValue, "must be an environment variable name (letters, digits, _; not starting with a digit)"))
			}
		}
		if j.Dir != "" && !filepath.IsAbs(j.Dir) {
			v.fail(key+".dir", v.value(key+".dir", j.Dir), wrapf(ErrInvalidValue, "must be an absolute path or start with ~/"))
		}
		if j.HTTP != nil && j.HTTP.ExpectStatus == 0 {
			hk := key + ".http.expect_status"
			v.fail(hk, v.value(hk, "0"), wrapf(ErrInvalidValue, "must be an HTTP status from 100 to 599"))
		}
		v.job(key, j, tzOK)
		v.atLeast(key+".timeout", j.Timeout, time.Second)
		v.atLeast(key+".grace", j.Grace, 0)
		v.atLeast(key+".jitter", j.Jitter, 0)
		if j.MaxInstances < 1 {
			v.fail(key+".max_instances", v.value(key+".max_instances", strconv.Itoa(j.MaxInstances)), wrapf(ErrInvalidValue, "must be at least 1"))
		}
		if j.MaxCatchup < 1 {
			v.fail(key+".max_catchup", v.value(key+".max_catchup", strconv.Itoa(j.MaxCatchup)), wrapf(ErrInvalidValue, "must be at least 1"))
		}
	}
}

// job reports what the scheduler itself refuses in j (scheduler.Job's
// Validate, the one job validator), each at its key's line, unless this
// validator already reported that key.
func (v *validator) job(key string, j *Job, tzOK bool) {
	err := j.SchedulerJob().Validate()
	var jes scheduler.JobErrors
	if !errors.As(err, &jes) {
		return
	}
	for _, je := range jes {
		k := key + "." + je.Field
		if je.Field == "command" && len(j.Command) == 0 {
			k = key // no command key to point at: the job as a whole
		}
		if je.Field == "schedule" {
			if tzOK && j.Schedule != "" { // else already reported
				v.failHint(k, v.value(k, j.Schedule), wrapf(ErrInvalidValue, "%s", cronHint), je.Err.Error())
			}
			continue
		}
		if v.reported(k) || je.Field == "name" {
			continue // config's own checks say it with its hint
		}
		sentinel := ErrInvalidValue
		if je.Missing {
			sentinel = ErrRequired
		}
		v.fail(k, v.value(k, ""), wrapf(sentinel, "%s", je.Err))
	}
}

// reported: an error at key (or below it) is already there.
func (v *validator) reported(key string) bool {
	for _, e := range v.errs {
		if e.Key == key || strings.HasPrefix(e.Key, key+".") || strings.HasPrefix(e.Key, key+"[") {
			return true
		}
	}
	return false
}
