package scheduler

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

type fakeMaintainer struct {
	checkpoints, checks int
	prunedBefore        []time.Time
	checkErr            error
}

func (f *fakeMaintainer) Checkpoint(ctx context.Context) error { f.checkpoints++; return nil }
func (f *fakeMaintainer) Prune(ctx context.Context, before time.Time) (int64, error) {
	f.prunedBefore = append(f.prunedBefore, before)
	return 7, nil
}
func (f *fakeMaintainer) QuickCheck(ctx context.Context) error { f.checks++; return f.checkErr }

func TestMaintenanceJob(t *testing.T) {
	now := utc(2026, 1, 10, 3, 30, 0)
	f := &fakeMaintainer{}
	j := MaintenanceJob(f, MaintenanceOptions{KeepFor: 24 * time.Hour, Now: func() time.Time { return now }})
	if err := j.Validate(); err != nil || !j.BuiltIn || j.Name != DefaultMaintenanceName {
		t.Fatalf("job %+v: %v", j, err)
	}
	out, err := j.Func(context.Background())
	if err != nil || f.checkpoints != 1 || f.checks != 1 || !f.prunedBefore[0].Equal(now.Add(-24*time.Hour)) {
		t.Fatalf("first run: %q, %v, %+v", out, err, f)
	}
	if !strings.Contains(out, "pruned 7 rows") || !strings.Contains(out, "quick_check ok") {
		t.Fatalf("output %q", out)
	}
	t.Run("QuickCheckRunsWeekly", func(t *testing.T) {
		now = now.Add(24 * time.Hour)
		if out, _ := j.Func(context.Background()); f.checks != 1 || !strings.Contains(out, "not due") {
			t.Fatalf("quick_check ran after a day: %d checks, %q", f.checks, out)
		}
		now = now.Add(6 * 24 * time.Hour)
		if _, _ = j.Func(context.Background()); f.checks != 2 {
			t.Fatalf("quick_check did not run after a week: %d", f.checks)
		}
	})
	t.Run("AFailedCheckFailsTheRunAndIsRetriedNextTime", func(t *testing.T) {
		f.checkErr = errors.New("row 3 missing from index")
		now = now.Add(8 * 24 * time.Hour)
		o := execute(context.Background(), j)
		if o.Result != ResultFailed || !strings.Contains(o.Err, "quick_check: row 3") || f.checkpoints != 4 {
			t.Fatalf("outcome %+v", o)
		}
		f.checkErr = nil
		now = now.Add(24 * time.Hour)
		if o := execute(context.Background(), j); o.Result != ResultOK || f.checks != 4 {
			t.Fatalf("check not retried: %+v, %d checks", o, f.checks)
		}
	})
}
