package scheduler

import (
	"testing"
	"time"
)

// FuzzSchedule feeds arbitrary cron expressions to the parser and, for
// those it accepts, checks what the scheduler builds on them: the next due
// time is strictly later (or zero: never again), successive due times
// increase, and the misfire decision over a bounded window stays inside
// that window, oldest first, with a watermark that never passes now.
//
//	go test -run '^$' -fuzz '^FuzzSchedule$' -fuzztime 30s ./scheduler
func FuzzSchedule(f *testing.F) {
	for _, s := range []string{
		"0 3 * * *", "*/5 * * * *", "@daily", "@hourly", "@every 15m", "@every 1s",
		"30 */2 * * * *", "0 0 29 2 *", "0 0 31 4 *", "CRON_TZ=Europe/Berlin 0 2 * * *",
		"TZ=America/New_York 30 2 * 3 0", "1-5/2 0 L * *", "0 0 1,15 * MON-FRI", "* * * * * *",
		"@every 0s", "@every -1m", "60 * * * *", "", " ", "@reboot", "0 0 ? * *",
	} {
		f.Add(s, int64(0), uint16(90), uint8(0))
	}
	base := time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC).Unix() // a DST change in Europe
	f.Fuzz(func(t *testing.T, spec string, offset int64, windowMin uint16, misfire uint8) {
		sched, loc, err := ParseIn(spec, time.UTC)
		if err != nil {
			if sched != nil {
				t.Fatalf("parse %q: a schedule and an error (%v)", spec, err)
			}
			return
		}
		if sched == nil || loc == nil {
			t.Fatalf("parse %q: no error but schedule %v location %v", spec, sched, loc)
		}
		// Somewhere within about ten years of base, on a whole second.
		from := time.Unix(base+offset%(10*365*86400), 0).UTC()
		next := nextIn(sched, loc, from)
		if next.IsZero() {
			return
		}
		if !next.After(from) {
			t.Fatalf("%q: next after %v is %v, not later", spec, from, next)
		}
		if after := nextIn(sched, loc, next); !after.IsZero() && !after.After(next) {
			t.Fatalf("%q: next after %v is %v, not later", spec, next, after)
		}

		// A bounded window (at most about 18 h) keeps one input fast even
		// for "@every 1s".
		now := from.Add(time.Duration(windowMin%1100) * time.Minute)
		j := Job{Name: "fuzz", Schedule: spec, Grace: time.Hour, MaxCatchup: 5,
			Misfire: []string{MisfireCoalesce, MisfireSkip, MisfireAll}[int(misfire)%3]}
		d := decide(sched, loc, withDefaults(j), from, now)
		if d.Watermark.Before(from) || d.Watermark.After(now) {
			t.Fatalf("%q: watermark %v outside [%v, %v]", spec, d.Watermark, from, now)
		}
		if !d.Next.IsZero() && !d.Next.After(d.Watermark) {
			t.Fatalf("%q: next %v not after the watermark %v", spec, d.Next, d.Watermark)
		}
		var prev time.Time
		for _, r := range d.Runs {
			if !r.At.After(from) || r.At.After(now) {
				t.Fatalf("%q: a run at %v outside (%v, %v]", spec, r.At, from, now)
			}
			if !prev.IsZero() && !r.At.After(prev) {
				t.Fatalf("%q: runs out of order: %v after %v", spec, r.At, prev)
			}
			prev = r.At
		}
		if j.Misfire == MisfireAll && len(d.Runs) > j.MaxCatchup+1 {
			t.Fatalf("%q: %d runs with max_catchup %d", spec, len(d.Runs), j.MaxCatchup)
		}
		if j.Misfire != MisfireAll && len(d.Runs) > 1 {
			t.Fatalf("%q: misfire %s made %d runs, want at most one", spec, j.Misfire, len(d.Runs))
		}
	})
}
