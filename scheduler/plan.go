package scheduler

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

// onTimeWithin is how late a due time may be found and still count as on
// time. A due time found later than this (the machine slept, the agent was
// down, the clock jumped forward) is a misfire and goes through the job's
// misfire policy.
const onTimeWithin = time.Minute

// maxEnumerate bounds how many passed due times are walked one by one (an
// "@every 1s" job after a month down); beyond it the window is narrowed.
const maxEnumerate = 100_000

// plannedRun is one run to make.
type plannedRun struct {
	At      time.Time // the scheduled time
	Reason  string    // ReasonSchedule or ReasonMisfire
	CatchUp bool      // a missed time: jittered and network-gated after a wake
}

// skipRecord is one "skipped" run to record.
type skipRecord struct {
	At     time.Time
	Reason string
	Error  string
}

// decision is what one job does at one evaluation.
type decision struct {
	Runs      []plannedRun
	Skips     []skipRecord
	Missed    int       // due times found late (counted as misfires)
	Watermark time.Time // every scheduled time up to here is accounted for
	Next      time.Time // the next due time (zero: the schedule never fires again)
}

// nextIn returns sched's next time after t, computed in loc, so a schedule
// follows its zone's calendar (and DST) whatever zone t carries.
func nextIn(sched cron.Schedule, loc *time.Location, t time.Time) time.Time {
	return sched.Next(t.In(loc))
}

// passedTimes returns the due times in (after, now], oldest first: all of
// them when there are at most maxEnumerate, else the ones in a narrower
// window ending at now (total is then a lower bound).
func passedTimes(sched cron.Schedule, loc *time.Location, after, now time.Time) (times []time.Time, total int) {
	for window := now.Sub(after); ; window /= 2 {
		from := after
		if now.Sub(from) > window {
			from = now.Add(-window)
		}
		times = times[:0]
		exceeded := false
		for t := nextIn(sched, loc, from); !t.IsZero() && !t.After(now); t = nextIn(sched, loc, t) {
			if len(times) == maxEnumerate {
				exceeded = true
				break
			}
			times = append(times, t)
		}
		if !exceeded {
			if total < len(times) {
				total = len(times)
			}
			return times, total
		}
		total = maxEnumerate
	}
}

// decide applies j's misfire policy to the due times in (watermark, now].
// It is pure: the scheduler feeds it the wall clock and acts on the result.
//
// Due times found within onTimeWithin of now are on time; earlier ones are
// missed. With several passed times, one run is made for the on-time ones
// (like cron, a job never queues behind itself). Missed times follow the
// policy:
//   - coalesce: one run, at the latest passed time, if that time is within
//     Grace (or some time is on time); otherwise a skipped record.
//   - skip: no run for the missed times, one skipped record (reason
//     misfire) saying how many; an on-time time still runs.
//   - all: a run for each missed time within Grace, the most recent
//     MaxCatchup of them, oldest first; one skipped record for the rest.
func decide(sched cron.Schedule, loc *time.Location, j Job, watermark, now time.Time) decision {
	d := decision{Watermark: watermark}
	times, total := passedTimes(sched, loc, watermark, now)
	if len(times) == 0 {
		d.Next = nextIn(sched, loc, watermark)
		return d
	}
	latest := times[len(times)-1]
	d.Watermark = latest
	d.Next = nextIn(sched, loc, latest)

	var late []time.Time
	onTime := false
	for _, t := range times {
		if now.Sub(t) > onTimeWithin {
			late = append(late, t)
		} else {
			onTime = true
		}
	}
	lateTotal := total - (len(times) - len(late))
	d.Missed = lateTotal
	if lateTotal == 0 {
		d.Runs = []plannedRun{{At: latest, Reason: ReasonSchedule}}
		return d
	}
	within := func(t time.Time) bool { return j.Grace <= 0 || now.Sub(t) <= j.Grace }
	lastLate := late[len(late)-1]
	switch j.Misfire {
	case MisfireSkip:
		d.Skips = []skipRecord{{At: lastLate, Reason: ReasonMisfire,
			Error: fmt.Sprintf("missed %d scheduled run(s), the last due %s; misfire policy skip", lateTotal, lastLate.Format(time.RFC3339))}}
		if onTime {
			d.Runs = []plannedRun{{At: latest, Reason: ReasonSchedule}}
		}
	case MisfireAll:
		var keep []time.Time
		for _, t := range late {
			if within(t) {
				keep = append(keep, t)
			}
		}
		if n := j.MaxCatchup; n > 0 && len(keep) > n {
			keep = keep[len(keep)-n:]
		}
		if dropped := lateTotal - len(keep); dropped > 0 {
			d.Skips = []skipRecord{{At: lastLate, Reason: ReasonMisfire,
				Error: fmt.Sprintf("missed %d scheduled run(s); %d dropped (beyond grace %s or max_catchup %d)", lateTotal, dropped, j.Grace, j.MaxCatchup)}}
		}
		for _, t := range keep {
			d.Runs = append(d.Runs, plannedRun{At: t, Reason: ReasonMisfire, CatchUp: true})
		}
		if onTime {
			d.Runs = append(d.Runs, plannedRun{At: latest, Reason: ReasonSchedule})
		}
	default: // coalesce
		switch {
		case onTime:
			d.Runs = []plannedRun{{At: latest, Reason: ReasonSchedule}}
		case within(latest):
			d.Runs = []plannedRun{{At: latest, Reason: ReasonMisfire, CatchUp: true}}
		default:
			d.Skips = []skipRecord{{At: latest, Reason: ReasonMisfire,
				Error: fmt.Sprintf("missed %d scheduled run(s), the last %s ago, beyond grace %s", lateTotal, now.Sub(latest).Round(time.Second), j.Grace)}}
		}
	}
	return d
}
