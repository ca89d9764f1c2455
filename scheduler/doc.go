// Package scheduler owns rouse's cron jobs that survive sleep: parsing
// schedules (robfig/cron's parser only, never its runner), arming them
// against the wall clock, applying each job's misfire policy after a wake,
// a restart or a clock jump, running the job's action (a command in its own
// process group, an HTTP request, or a built-in function), and recording
// every run through a small Store that agent/store satisfies.
//
// The Scheduler is one component (trackers.Component, Resumer, Pauser).
//
// # Wall-clock arming
//
// Go timers follow the monotonic clock: it stops while the machine is
// suspended (Linux, macOS) and a wall-clock set does not move it. So the
// loop sleeps until the next due job's wall-clock time, at most
// Options.Step (default DefaultStep, 1 min; the agent, which forwards both
// notifications below, passes NoStep), and is woken early by the two
// events that move the wall clock apart from its timer: Resume (the agent
// calls it after every wake) and ClockChanged (the agent forwards
// platform/clockwatch, which on Linux hears of every clock set from the
// kernel at no cost while idle). On every step it compares the wall clock
// (monotonic part stripped) with each job's next due time. A job due in 1 h
// with 15 min of sleep in between therefore runs at its wall-clock time:
// Resume re-arms it after the wake. A job due in 1 h when the clock is set
// 3 h forward runs at once (coalesced), not 1 h later: ClockChanged re-arms
// it. When the wall clock moved more than 5 s further than the monotonic
// clock between two steps, the step is treated as a wake even before the
// agent calls Resume. The step only bounds how late a job can run when
// both notifications were missed; it is long so an idle agent does not
// wake for nothing.
//
// # Decisions written down
//
//   - Each job keeps a watermark, persisted as lastScheduled: every
//     scheduled time up to it has been dispatched or deliberately skipped.
//     A time at or before the watermark never runs again, so a clock set
//     back never runs a job twice. A job never run starts its watermark at
//     the moment it is first armed.
//   - A due time found within a minute of its time is on time; a later one
//     is missed (a misfire) and follows the policy: coalesce (default) runs
//     once at the latest missed time if it is within Grace (0: no limit);
//     skip runs none; all runs each missed time within Grace, the most
//     recent MaxCatchup (default 10), oldest first, one after the other.
//   - Misses are visible: skip, and what coalesce or all had to drop, are
//     recorded as ONE run with result "skipped", reason "misfire", and an
//     error saying how many times were missed. rouse_job_misfires_total
//     counts every missed time.
//   - Catch-up runs after a wake, a restart or a clock jump forward are
//     delayed by a random [0, Jitter), and scheduled runs of a NeedsNetwork
//     job wait for Options.WaitOnline. Manual runs (RunNow) start at once.
//   - Overlap: a run beyond MaxInstances (default 1) is recorded with result
//     "skipped", reason "overlap".
//   - The watermark is persisted when a run is dispatched, before it ends:
//     a run is made at most once even if the agent dies during it. Catch-up
//     runs still waiting for their jitter or the network when the scheduler
//     stops are dropped.
//   - A run cut short by the scheduler stopping is recorded "failed" with
//     the error "cancelled: the scheduler stopped"; "timeout" is only the
//     job's own Timeout (SIGTERM to the process group, SIGKILL 3 s later).
//   - Config reload (SetJobs) keeps a job's state by name; a job whose
//     schedule or zone changed is re-armed from now (no catch-up of the new
//     schedule's past times).
//   - DST follows robfig/cron's Next in the job's zone: in a spring-forward
//     gap a local time that does not exist is not run that day ("30 2 * * *"
//     in New York skips the second Sunday of March); in the fall-back hour a
//     local time that happens twice is two instants and runs at both
//     ("30 1 * * *" runs at 01:30 EDT and 01:30 EST). An instant never runs
//     twice: times strictly increase past the watermark.
//   - Lateness (rouse_job_lateness_seconds) is actual start minus scheduled
//     time, for scheduled runs, jitter and network wait included.
package scheduler
