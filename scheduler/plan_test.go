package scheduler

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	base := utc(2026, 1, 10, 0, 0, 0)
	h := func(n int) time.Time { return base.Add(time.Duration(n) * time.Hour) }
	cases := []struct {
		name      string
		policy    string
		grace     time.Duration
		catchup   int
		watermark time.Time
		now       time.Time
		runs      []time.Time
		catchUp   bool
		skips     int
		missed    int
		next      time.Time
	}{
		{"NothingDueDoesNothing", MisfireCoalesce, 0, 0, h(1), h(1).Add(30 * time.Minute), nil, false, 0, 0, h(2)},
		{"OnTimeRunsOnce", MisfireSkip, 0, 0, h(1), h(2).Add(5 * time.Second), []time.Time{h(2)}, false, 0, 0, h(3)},
		{"ClockBehindTheWatermarkRunsNothing", MisfireAll, 0, 0, h(5), h(3), nil, false, 0, 0, h(6)},
		{"CoalesceRunsTheLatestMissed", MisfireCoalesce, 0, 0, h(1), h(4).Add(10 * time.Minute), []time.Time{h(4)}, true, 0, 3, h(5)},
		{"CoalesceWithinGraceRuns", MisfireCoalesce, time.Hour, 0, h(1), h(4).Add(10 * time.Minute), []time.Time{h(4)}, true, 0, 3, h(5)},
		{"CoalesceBeyondGraceSkips", MisfireCoalesce, 5 * time.Minute, 0, h(1), h(4).Add(10 * time.Minute), nil, false, 1, 3, h(5)},
		{"CoalesceWithAnOnTimeTimeRunsOnTime", MisfireCoalesce, time.Minute, 0, h(1), h(4).Add(10 * time.Second), []time.Time{h(4)}, false, 0, 2, h(5)},
		{"SkipRecordsOnce", MisfireSkip, 0, 0, h(1), h(4).Add(10 * time.Minute), nil, false, 1, 3, h(5)},
		{"SkipStillRunsAnOnTimeTime", MisfireSkip, 0, 0, h(1), h(4).Add(10 * time.Second), []time.Time{h(4)}, false, 1, 2, h(5)},
		{"AllRunsEachOldestFirst", MisfireAll, 0, 10, h(1), h(4).Add(10 * time.Minute), []time.Time{h(2), h(3), h(4)}, true, 0, 3, h(5)},
		{"AllKeepsTheMostRecentMaxCatchup", MisfireAll, 0, 2, h(1), h(4).Add(10 * time.Minute), []time.Time{h(3), h(4)}, true, 1, 3, h(5)},
		{"AllDropsTimesBeyondGrace", MisfireAll, 90 * time.Minute, 10, h(1), h(4).Add(10 * time.Minute), []time.Time{h(3), h(4)}, true, 1, 3, h(5)},
	}
	sched, loc, err := ParseIn("0 * * * *", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := withDefaults(Job{Name: "j", Misfire: c.policy, Grace: c.grace, MaxCatchup: c.catchup})
			d := decide(sched, loc, j, c.watermark, c.now)
			var got []time.Time
			for _, r := range d.Runs {
				got = append(got, r.At)
			}
			wantTimes(t, "runs", got, c.runs...)
			if len(d.Runs) > 0 && d.Runs[0].CatchUp != c.catchUp {
				t.Fatalf("catch-up = %v, want %v", d.Runs[0].CatchUp, c.catchUp)
			}
			if len(d.Skips) != c.skips || d.Missed != c.missed || !d.Next.Equal(c.next) {
				t.Fatalf("skips %d missed %d next %v; want %d %d %v", len(d.Skips), d.Missed, d.Next, c.skips, c.missed, c.next)
			}
			if !d.Next.After(c.now) && !c.now.Before(c.watermark) {
				t.Fatalf("next %v is not after now %v", d.Next, c.now)
			}
		})
	}
}

func TestDecideAfterAVeryLongGap(t *testing.T) {
	sched, loc, err := ParseIn("@every 1s", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	j := withDefaults(Job{Name: "j", Misfire: MisfireAll, MaxCatchup: 3})
	watermark := utc(2026, 1, 1, 0, 0, 0)
	now := watermark.Add(60 * 24 * time.Hour) // 5 million seconds later
	d := decide(sched, loc, j, watermark, now)
	// The count is a lower bound once the walk is cut short; the last
	// minute's times are on time, not missed.
	if d.Missed < maxEnumerate-61 {
		t.Fatalf("missed = %d, want at least %d", d.Missed, maxEnumerate-61)
	}
	// The three most recent missed times, then the on-time one.
	var got []time.Time
	for _, r := range d.Runs {
		got = append(got, r.At)
	}
	wantTimes(t, "runs", got, now.Add(-63*time.Second), now.Add(-62*time.Second), now.Add(-61*time.Second), now)
	if !d.Watermark.Equal(now) || !d.Next.Equal(now.Add(time.Second)) {
		t.Fatalf("watermark %v next %v", d.Watermark, d.Next)
	}
}

func TestValidate(t *testing.T) {
	ok := Job{Name: "j", Schedule: "*/5 * * * *", Command: []string{"true"}}
	cases := []struct {
		name  string
		edit  func(j *Job)
		field string
	}{
		{"AValidJobPasses", func(j *Job) {}, ""},
		{"SecondsFieldIsAccepted", func(j *Job) { j.Schedule = "*/10 * * * * *" }, ""},
		{"DescriptorsAreAccepted", func(j *Job) { j.Schedule = "@every 90s" }, ""},
		{"ZonePrefixIsAccepted", func(j *Job) { j.Schedule = "CRON_TZ=Europe/Berlin 0 3 * * *" }, ""},
		{"MissingNameIsRejected", func(j *Job) { j.Name = "" }, "name"},
		{"BadScheduleIsRejected", func(j *Job) { j.Schedule = "every day" }, "schedule"},
		{"NoActionIsRejected", func(j *Job) { j.Command = nil }, "command"},
		{"TwoActionsAreRejected", func(j *Job) { j.HTTP = &HTTPAction{URL: "http://127.0.0.1/"} }, "http"},
		{"BadMisfireIsRejected", func(j *Job) { j.Misfire = "later" }, "misfire"},
		{"NegativeTimeoutIsRejected", func(j *Job) { j.Timeout = -time.Second }, "timeout"},
		{"HTTPWithoutSchemeIsRejected", func(j *Job) { j.Command = nil; j.HTTP = &HTTPAction{URL: "example.com"} }, "http.url"},
		{"HTTPBadStatusIsRejected", func(j *Job) { j.Command = nil; j.HTTP = &HTTPAction{URL: "http://x/", ExpectStatus: 42} }, "http.expect_status"},
		{"HTTPBadMethodIsRejected", func(j *Job) { j.Command = nil; j.HTTP = &HTTPAction{URL: "http://x/", Method: "FETCH"} }, "http.method"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := ok
			c.edit(&j)
			err := j.Validate()
			if c.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var je *JobError
			if !errors.As(err, &je) || je.Field != c.field || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("Validate = %v, want a JobError on %q", err, c.field)
			}
		})
	}
}
