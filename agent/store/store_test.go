package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/wire"
)

func TestOpen(t *testing.T) {
	t.Run("CreatesTheParentDirectoryPrivate", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "b")
		s, err := Open(ctxT(t), filepath.Join(dir, "rouse.db"), Options{Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(context.Background())
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o700 {
			t.Errorf("directory mode = %v, want 0700", perm)
		}
		if s.State() != wire.StoreOpen {
			t.Errorf("State = %q, want open", s.State())
		}
		if s.Path() != filepath.Join(dir, "rouse.db") {
			t.Errorf("Path = %q", s.Path())
		}
		if s.UncleanShutdown() {
			t.Error("a new database reports an unclean shutdown")
		}
	})
	t.Run("SetsWALAndBusyTimeout", func(t *testing.T) {
		s := openTemp(t)
		var mode string
		var busy int
		_ = s.withDB(ctxT(t), "test", func(ctx context.Context, w, _ *sql.DB) error {
			if err := w.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
				t.Fatal(err)
			}
			return w.QueryRow(`PRAGMA busy_timeout`).Scan(&busy)
		})
		if mode != "wal" || busy != 5000 {
			t.Errorf("journal_mode = %q, busy_timeout = %d; want wal, 5000", mode, busy)
		}
	})
	t.Run("ReadPoolRefusesWrites", func(t *testing.T) {
		s := openTemp(t)
		err := s.withDB(ctxT(t), "test", func(ctx context.Context, _, r *sql.DB) error {
			_, err := r.Exec(`INSERT INTO meta(key, value) VALUES('x', 'y')`)
			return err
		})
		if err == nil {
			t.Fatal("a write through the read pool succeeded")
		}
	})
	t.Run("HandlesAPathWithSpecialCharacters", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "my data#1?", "rouse %20.db")
		s, err := Open(ctxT(t), p, Options{Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(context.Background())
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("database not at the path given: %v", err)
		}
		if err := s.Verify(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("FailsClearlyOnAFileThatIsNotADatabase", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "rouse.db")
		if err := os.WriteFile(p, []byte(strings.Repeat("not a database ", 400)), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(ctxT(t), p, Options{Logger: quiet()})
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Fatalf("Open of a non-database = %v, want an error naming the file", err)
		}
	})
	t.Run("FailsClearlyWhenTheDirectoryCannotBeCreated", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(ctxT(t), filepath.Join(f, "rouse.db"), Options{Logger: quiet()})
		if err == nil {
			t.Fatal("Open under a regular file succeeded")
		}
	})
}

func TestReopen(t *testing.T) {
	t.Run("OpenCloseReopenReopenKeepsData", func(t *testing.T) {
		ctx := ctxT(t)
		s := openTemp(t)
		if err := s.SetDesired(ctx, "tunnel", false); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(ctx); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if s.State() != wire.StoreClosed {
			t.Errorf("State after Close = %q", s.State())
		}
		for i := range 2 {
			if err := s.Reopen(ctx); err != nil {
				t.Fatalf("Reopen %d: %v", i, err)
			}
			if s.State() != wire.StoreOpen {
				t.Errorf("State after Reopen = %q", s.State())
			}
			if s.UncleanShutdown() {
				t.Errorf("Reopen %d reports an unclean shutdown after a clean Close", i)
			}
			d, err := s.Desired(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if active, ok := d["tunnel"]; !ok || active {
				t.Fatalf("desired after reopen = %v, want tunnel stopped", d)
			}
		}
	})
	t.Run("CloseTruncatesTheWAL", func(t *testing.T) {
		ctx := ctxT(t)
		s := openTemp(t)
		for i := range 50 {
			if err := s.AddStateEvent(ctx, StateEvent{Component: "c", State: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(s.Path() + "-wal")
		if err == nil && fi.Size() != 0 {
			t.Errorf("WAL is %d bytes after Close, want 0 or gone", fi.Size())
		}
	})
}

func TestUncleanShutdown(t *testing.T) {
	t.Run("IsReportedWhenThePreviousOpenerDidNotClose", func(t *testing.T) {
		ctx := ctxT(t)
		first := openTemp(t) // never closed before second opens
		second, err := Open(ctx, first.Path(), Options{Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		defer second.Close(ctx)
		if !second.UncleanShutdown() {
			t.Error("UncleanShutdown = false while the previous opener is still open")
		}
	})
}

func TestClosedCallsReturnErrClosed(t *testing.T) {
	ctx := ctxT(t)
	s := openTemp(t)
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	calls := map[string]func() error{
		"Verify":          func() error { return s.Verify() },
		"Checkpoint":      func() error { return s.Checkpoint(ctx, "PASSIVE") },
		"QuickCheck":      func() error { return s.QuickCheck(ctx) },
		"IntegrityCheck":  func() error { return s.IntegrityCheck(ctx) },
		"Prune":           func() error { _, err := s.Prune(ctx, now); return err },
		"SetDesired":      func() error { return s.SetDesired(ctx, "a", true) },
		"Desired":         func() error { _, err := s.Desired(ctx); return err },
		"AddStateEvent":   func() error { return s.AddStateEvent(ctx, StateEvent{Component: "a"}) },
		"StateEvents":     func() error { _, err := s.StateEvents(ctx, "", 0); return err },
		"CreateWake":      func() error { _, err := s.CreateWake(ctx, wire.Wake{}); return err },
		"FinishWake":      func() error { return s.FinishWake(ctx, wire.Wake{ID: 1}) },
		"Wakes":           func() error { _, err := s.Wakes(ctx, 0); return err },
		"Wake":            func() error { _, err := s.Wake(ctx, 1); return err },
		"Restores":        func() error { _, err := s.ComponentRestores(ctx, "a", 5); return err },
		"SaveItems":       func() error { _, err := s.SaveItems(ctx, "t", nil, ""); return err },
		"Cursor":          func() error { _, err := s.Cursor(ctx, "t"); return err },
		"Items":           func() error { _, err := s.Items(ctx, "t", ItemQuery{}); return err },
		"CountItems":      func() error { _, err := s.CountItems(ctx, "t"); return err },
		"JobState":        func() error { _, _, err := s.JobState(ctx, "j"); return err },
		"SetJobState":     func() error { return s.SetJobState(ctx, "j", now, now) },
		"AddJobRun":       func() error { _, err := s.AddJobRun(ctx, wire.JobRun{Job: "j"}); return err },
		"UpdateJobRun":    func() error { return s.UpdateJobRun(ctx, wire.JobRun{ID: 1}) },
		"JobRuns":         func() error { _, err := s.JobRuns(ctx, "j", 0); return err },
		"SaveItemsCursor": func() error { _, err := s.SaveItems(ctx, "t", nil, "c"); return err },
	}
	for name, call := range calls {
		t.Run(name+"ReturnsErrClosed", func(t *testing.T) {
			if err := call(); !errors.Is(err, ErrClosed) {
				t.Errorf("%s while closed = %v, want ErrClosed", name, err)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	t.Run("DetectsADeletedDirectory", func(t *testing.T) {
		ctx := ctxT(t)
		s := openTemp(t)
		if err := s.Verify(); err != nil {
			t.Fatalf("Verify on a fresh store: %v", err)
		}
		if err := os.RemoveAll(filepath.Dir(s.Path())); err != nil {
			t.Fatal(err)
		}
		if err := s.Verify(); !errors.Is(err, ErrReplaced) {
			t.Fatalf("Verify after deleting the directory = %v, want ErrReplaced", err)
		}
		if s.State() != wire.StoreError {
			t.Errorf("State = %q, want error", s.State())
		}
		if err := s.Reopen(ctx); err != nil {
			t.Fatalf("Reopen: %v", err)
		}
		if err := s.Verify(); err != nil {
			t.Fatalf("Verify after Reopen: %v", err)
		}
		if s.State() != wire.StoreOpen {
			t.Errorf("State after Reopen = %q, want open", s.State())
		}
	})
	t.Run("DetectsAReplacedFile", func(t *testing.T) {
		s := openTemp(t)
		other := filepath.Join(filepath.Dir(s.Path()), "other")
		if err := os.WriteFile(other, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(other, s.Path()); err != nil {
			t.Fatal(err)
		}
		if err := s.Verify(); !errors.Is(err, ErrReplaced) {
			t.Fatalf("Verify after replacing the file = %v, want ErrReplaced", err)
		}
	})
}

func TestMigrations(t *testing.T) {
	t.Run("AreIdempotent", func(t *testing.T) {
		ctx := ctxT(t)
		s := openTemp(t)
		if err := s.SetDesired(ctx, "a", true); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := s.withDB(ctx, "migrate", func(ctx context.Context, w, _ *sql.DB) error { return migrate(ctx, w) }); err != nil {
				t.Fatalf("migrate again: %v", err)
			}
			if err := s.Reopen(ctx); err != nil {
				t.Fatal(err)
			}
		}
		var v int
		_ = s.withDB(ctx, "v", func(ctx context.Context, _, r *sql.DB) error { return r.QueryRow(`PRAGMA user_version`).Scan(&v) })
		if v != schemaVersion {
			t.Errorf("user_version = %d, want %d", v, schemaVersion)
		}
		if d, _ := s.Desired(ctx); !d["a"] {
			t.Errorf("data lost across migrations: %v", d)
		}
	})
	t.Run("RefuseADatabaseFromANewerRouse", func(t *testing.T) {
		ctx := ctxT(t)
		s := openTemp(t)
		if err := s.withDB(ctx, "bump", func(ctx context.Context, w, _ *sql.DB) error {
			_, err := w.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion+1))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		err := s.Reopen(ctx)
		if err == nil {
			t.Fatal("Reopen of a newer schema succeeded")
		}
		if s.State() != wire.StoreError {
			t.Errorf("State = %q, want error", s.State())
		}
	})
}

func item(id string, at time.Time, data string) trackers.Item {
	return trackers.Item{ID: id, Time: at, Data: json.RawMessage(data)}
}

func TestSaveItems(t *testing.T) {
	t.Run("DeduplicatesAndSetsTheCursor", func(t *testing.T) {
		ctx := ctxT(t)
		s := openTemp(t)
		t0 := time.Date(2026, 11, 3, 3, 0, 0, 123456789, time.FixedZone("x", 3600))
		n, err := s.SaveItems(ctx, "scrobbles", []trackers.Item{item("a", t0, `{"n":1}`), item("b", t0, `2`)}, "c1")
		if err != nil || n != 2 {
			t.Fatalf("SaveItems = %d, %v; want 2", n, err)
		}
		n, err = s.SaveItems(ctx, "scrobbles", []trackers.Item{item("b", t0, `2`), item("c", t0, `3`), item("c", t0, `3`)}, "c2")
		if err != nil || n != 1 {
			t.Fatalf("SaveItems with duplicates = %d, %v; want 1", n, err)
		}
		// Same IDs under another tracker are distinct.
		if n, _ := s.SaveItems(ctx, "other", []trackers.Item{item("a", t0, `1`)}, ""); n != 1 {
			t.Errorf("another tracker's item a: added %d, want 1", n)
		}
		if c, _ := s.Cursor(ctx, "scrobbles"); c != "c2" {
			t.Errorf("Cursor = %q, want c2", c)
		}
		if c, _ := s.Cursor(ctx, "other"); c != "" {
			t.Errorf("Cursor of a tracker that never set one = %q", c)
		}
		if n, _ := s.SaveItems(ctx, "scrobbles", nil, ""); n != 0 {
			t.Errorf("empty save added %d", n)
		}
		if c, _ := s.Cursor(ctx, "scrobbles"); c != "c2" {
			t.Errorf(`cursor "" moved the cursor to %q`, c)
		}
		if n, _ := s.CountItems(ctx, "scrobbles"); n != 3 {
			t.Errorf("CountItems = %d, want 3", n)
		}
		if n, _ := s.CountItems(ctx, ""); n != 4 {
			t.Errorf("CountItems(all) = %d, want 4", n)
		}
		items, err := s.Items(ctx, "scrobbles", ItemQuery{Oldest: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 3 || !items[0].Time.Equal(t0) || items[0].Time.Location() != time.UTC {
			t.Fatalf("items = %+v; want 3, the first at %v in UTC", items, t0)
		}
		if string(items[0].Data) != `{"n":1}` || items[0].Size != int64(len(items[0].Data)) {
			t.Errorf("Data = %s (size %d), want the JSON as stored", items[0].Data, items[0].Size)
		}
	})
	t.Run("AFailingTransactionLeavesCursorAndItemsUnchanged", func(t *testing.T) {
		ctx := ctxT(t)
		s := openTemp(t)
		if _, err := s.SaveItems(ctx, "tr", []trackers.Item{item("a", time.Now(), `1`)}, "before"); err != nil {
			t.Fatal(err)
		}
		bad := []trackers.Item{item("b", time.Now(), `2`), item("c", time.Now(), `{not json`)}
		if _, err := s.SaveItems(ctx, "tr", bad, "after"); err == nil {
			t.Fatal("SaveItems with invalid JSON succeeded")
		}
		if c, _ := s.Cursor(ctx, "tr"); c != "before" {
			t.Errorf("cursor = %q after a failed save, want before", c)
		}
		if n, _ := s.CountItems(ctx, "tr"); n != 1 {
			t.Errorf("CountItems = %d after a failed save, want 1 (item b rolled back)", n)
		}
	})
	t.Run("ACancelledContextStoresNothing", func(t *testing.T) {
		s := openTemp(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := s.SaveItems(ctx, "tr", []trackers.Item{item("a", time.Now(), `1`)}, "c"); err == nil {
			t.Fatal("SaveItems with a cancelled context succeeded")
		}
		if c, _ := s.Cursor(ctxT(t), "tr"); c != "" {
			t.Errorf("cursor = %q", c)
		}
	})
}

func TestItemsPaging(t *testing.T) {
	ctx := ctxT(t)
	s := openTemp(t)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var batch []trackers.Item
	for i := range 25 {
		batch = append(batch, item(fmt.Sprintf("i%02d", i), base.Add(time.Duration(i)*time.Minute), fmt.Sprint(i)))
	}
	if _, err := s.SaveItems(ctx, "t", batch, ""); err != nil {
		t.Fatal(err)
	}
	collect := func(q ItemQuery) []string {
		t.Helper()
		var ids []string
		for page := 0; page < 10; page++ {
			items, err := s.Items(ctx, "t", q)
			if err != nil {
				t.Fatal(err)
			}
			if len(items) > q.Limit {
				t.Fatalf("page of %d items, limit %d", len(items), q.Limit)
			}
			if len(items) == 0 {
				return ids
			}
			for _, it := range items {
				ids = append(ids, it.ID)
			}
			last := items[len(items)-1].Seq
			if q.Oldest {
				q.AfterSeq = last
			} else {
				q.BeforeSeq = last
			}
		}
		t.Fatal("paging did not end")
		return nil
	}
	t.Run("NewestFirstPagesWithBeforeSeq", func(t *testing.T) {
		ids := collect(ItemQuery{Limit: 10})
		if len(ids) != 25 || ids[0] != "i24" || ids[24] != "i00" {
			t.Fatalf("ids = %v", ids)
		}
	})
	t.Run("OldestFirstPagesWithAfterSeq", func(t *testing.T) {
		ids := collect(ItemQuery{Limit: 10, Oldest: true})
		if len(ids) != 25 || ids[0] != "i00" || ids[24] != "i24" {
			t.Fatalf("ids = %v", ids)
		}
	})
	t.Run("SinceKeepsItemsAtOrAfterIt", func(t *testing.T) {
		ids := collect(ItemQuery{Limit: 4, Oldest: true, Since: base.Add(20 * time.Minute)})
		if !reflect.DeepEqual(ids, []string{"i20", "i21", "i22", "i23", "i24"}) {
			t.Fatalf("ids = %v", ids)
		}
	})
	t.Run("AnUnknownTrackerHasNoItems", func(t *testing.T) {
		items, err := s.Items(ctx, "nope", ItemQuery{})
		if err != nil || items == nil || len(items) != 0 {
			t.Fatalf("Items = %v, %v; want an empty non-nil slice", items, err)
		}
	})
}

func TestDesiredAndStateEvents(t *testing.T) {
	ctx := ctxT(t)
	s := openTemp(t)
	t.Run("DesiredHoldsOnlyNamesEverSet", func(t *testing.T) {
		_ = s.SetDesired(ctx, "a", false)
		_ = s.SetDesired(ctx, "b", false)
		_ = s.SetDesired(ctx, "b", true)
		d, err := s.Desired(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(d, map[string]bool{"a": false, "b": true}) {
			t.Fatalf("Desired = %v", d)
		}
	})
	t.Run("StateEventsComeNewestFirst", func(t *testing.T) {
		at := time.Date(2026, 2, 3, 4, 5, 6, 7, time.UTC)
		_ = s.AddStateEvent(ctx, StateEvent{Component: "x", State: "starting", Previous: "waiting", At: at})
		_ = s.AddStateEvent(ctx, StateEvent{Component: "y", State: "ready"})
		_ = s.AddStateEvent(ctx, StateEvent{Component: "x", State: "failed", Previous: "starting", Error: "boom", At: at.Add(time.Second)})
		evs, err := s.StateEvents(ctx, "x", 0)
		if err != nil {
			t.Fatal(err)
		}
		want := []StateEvent{
			{Component: "x", State: "failed", Previous: "starting", Error: "boom", At: at.Add(time.Second)},
			{Component: "x", State: "starting", Previous: "waiting", At: at},
		}
		if !reflect.DeepEqual(evs, want) {
			t.Fatalf("StateEvents(x) = %+v\nwant %+v", evs, want)
		}
		all, _ := s.StateEvents(ctx, "", 2)
		if len(all) != 2 || all[0].State != "failed" || all[1].Component != "y" || all[1].At.IsZero() {
			t.Fatalf("StateEvents(all, 2) = %+v", all)
		}
	})
}

func TestWakes(t *testing.T) {
	ctx := ctxT(t)
	s := openTemp(t)
	slept := time.Date(2026, 3, 1, 22, 0, 0, 1, time.UTC)
	woke := slept.Add(8 * time.Hour)
	id, err := s.CreateWake(ctx, wire.Wake{ID: 99, DetectedBy: "logind", SleptAt: &slept, WokeAt: woke, SleptSeconds: 28800})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("CreateReturnsANewID", func(t *testing.T) {
		if id == 99 || id <= 0 {
			t.Fatalf("id = %d", id)
		}
	})
	t.Run("FinishStoresSummaryAndComponents", func(t *testing.T) {
		w := wire.Wake{ID: id, Done: true,
			Restore: wire.RestoreSummary{DurationMS: 2100, Ready: 2, TimedOut: 1, Failed: 0, Skipped: 1},
			Components: []wire.WakeComponent{
				{Name: "tunnel", State: "ready", DurationMS: 900},
				{Name: "stream", State: "degraded", DurationMS: 10000, WaitedMS: 900, Error: "deadline"},
				{Name: "api", State: "ready", DurationMS: 2100},
			}}
		if err := s.FinishWake(ctx, w); err != nil {
			t.Fatal(err)
		}
		got, err := s.Wake(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want := w
		want.DetectedBy, want.SleptAt, want.WokeAt, want.SleptSeconds = "logind", &slept, woke, 28800
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Wake = %+v\nwant %+v", got, want)
		}
		// Finishing again replaces the components.
		w.Components = w.Components[:1]
		if err := s.FinishWake(ctx, w); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Wake(ctx, id); len(got.Components) != 1 {
			t.Fatalf("components after second finish = %+v", got.Components)
		}
	})
	t.Run("UnknownWakeIsNotFound", func(t *testing.T) {
		if _, err := s.Wake(ctx, 12345); !errors.Is(err, ErrNotFound) {
			t.Errorf("Wake(12345) = %v", err)
		}
		if err := s.FinishWake(ctx, wire.Wake{ID: 12345}); !errors.Is(err, ErrNotFound) {
			t.Errorf("FinishWake(12345) = %v", err)
		}
	})
	t.Run("WakesListsNewestFirstWithComponents", func(t *testing.T) {
		id2, err := s.CreateWake(ctx, wire.Wake{DetectedBy: "manual",
			Components: []wire.WakeComponent{{Name: "tunnel", State: "ready", DurationMS: 700}}})
		if err != nil {
			t.Fatal(err)
		}
		id3, _ := s.CreateWake(ctx, wire.Wake{DetectedBy: "clock"})
		ws, err := s.Wakes(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) != 2 || ws[0].ID != id3 || ws[1].ID != id2 {
			t.Fatalf("Wakes(2) = %+v", ws)
		}
		if ws[0].Components == nil || len(ws[0].Components) != 0 || len(ws[1].Components) != 1 || ws[1].SleptAt != nil {
			t.Fatalf("components = %+v / %+v", ws[0].Components, ws[1].Components)
		}
		if ws[1].WokeAt.IsZero() {
			t.Error("a zero WokeAt was not stored as now")
		}
		all, _ := s.Wakes(ctx, 0)
		if len(all) != 3 || len(all[2].Components) != 1 {
			t.Fatalf("Wakes(0) = %+v", all)
		}
	})
	t.Run("ComponentRestoresKeepReadyAndTimedOutRestoresNewestFirst", func(t *testing.T) {
		rs, err := s.ComponentRestores(ctx, "tunnel", 5)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(rs, []Restore{{Duration: 700 * time.Millisecond}, {Duration: 900 * time.Millisecond}}) {
			t.Fatalf("restores = %v", rs)
		}
		if _, err := s.CreateWake(ctx, wire.Wake{DetectedBy: "manual", Components: []wire.WakeComponent{
			{Name: "stream", State: "degraded", DurationMS: 10000, Error: "deadline"},
			{Name: "stream2", State: "failed", DurationMS: 5},
			{Name: "stream2", State: "waiting", DurationMS: 0},
		}}); err != nil {
			t.Fatal(err)
		}
		if rs, _ := s.ComponentRestores(ctx, "stream2", 5); len(rs) != 0 {
			t.Fatalf("failed and waiting restores counted: %v", rs)
		}
		rs, _ = s.ComponentRestores(ctx, "stream", 5)
		if !reflect.DeepEqual(rs, []Restore{{Duration: 10 * time.Second, TimedOut: true}}) {
			t.Fatalf("a timed-out restore is not a censored sample: %v", rs)
		}
	})
}

func TestJobs(t *testing.T) {
	ctx := ctxT(t)
	s := openTemp(t)
	t.Run("StateIsZeroUntilSetThenRoundTrips", func(t *testing.T) {
		last, next, err := s.JobState(ctx, "export")
		if err != nil || !last.IsZero() || !next.IsZero() {
			t.Fatalf("JobState of a new job = %v, %v, %v", last, next, err)
		}
		l := time.Date(2026, 5, 6, 3, 0, 0, 999, time.Local)
		n := l.Add(24 * time.Hour)
		if err := s.SetJobState(ctx, "export", l, n); err != nil {
			t.Fatal(err)
		}
		last, next, _ = s.JobState(ctx, "export")
		if !last.Equal(l) || !next.Equal(n) {
			t.Fatalf("JobState = %v, %v; want %v, %v", last, next, l, n)
		}
		_ = s.SetJobState(ctx, "export", n, time.Time{})
		last, next, _ = s.JobState(ctx, "export")
		if !last.Equal(n) || !next.IsZero() {
			t.Fatalf("JobState after update = %v, %v", last, next)
		}
	})
	t.Run("RunsRoundTripNewestFirst", func(t *testing.T) {
		sched := time.Date(2026, 5, 6, 3, 0, 0, 0, time.UTC)
		r := wire.JobRun{Job: "export", ScheduledAt: sched, Result: "running", Reason: "schedule"}
		id, err := s.AddJobRun(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		started, ended, code := sched.Add(time.Second), sched.Add(3*time.Second), 3
		r.ID, r.StartedAt, r.EndedAt, r.ExitCode, r.Result, r.Output, r.Error = id, &started, &ended, &code, "failed", "tail", "exit 3"
		if err := s.UpdateJobRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		id2, _ := s.AddJobRun(ctx, wire.JobRun{Job: "export", ScheduledAt: sched.Add(time.Hour), Result: "ok", Reason: "manual"})
		_, _ = s.AddJobRun(ctx, wire.JobRun{Job: "other", Result: "ok"})
		runs, err := s.JobRuns(ctx, "export", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != 2 || runs[0].ID != id2 {
			t.Fatalf("JobRuns = %+v", runs)
		}
		if !reflect.DeepEqual(runs[1], r) {
			t.Fatalf("run = %+v\nwant %+v", runs[1], r)
		}
		if all, _ := s.JobRuns(ctx, "", 0); len(all) != 3 {
			t.Fatalf("JobRuns(all) = %d runs", len(all))
		}
		if err := s.UpdateJobRun(ctx, wire.JobRun{ID: 9999}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("UpdateJobRun(9999) = %v", err)
		}
	})
}

func TestPrune(t *testing.T) {
	ctx := ctxT(t)
	s := openTemp(t)
	old := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cut := old.Add(24 * time.Hour)
	recent := cut.Add(time.Hour)
	_ = s.AddStateEvent(ctx, StateEvent{Component: "a", State: "ready", At: old})
	_ = s.AddStateEvent(ctx, StateEvent{Component: "a", State: "ready", At: recent})
	_, _ = s.CreateWake(ctx, wire.Wake{DetectedBy: "x", WokeAt: old, Components: []wire.WakeComponent{{Name: "a", State: "ready"}}})
	keep, _ := s.CreateWake(ctx, wire.Wake{DetectedBy: "y", WokeAt: recent})
	_, _ = s.AddJobRun(ctx, wire.JobRun{Job: "j", ScheduledAt: old, Result: "ok"})
	_, _ = s.AddJobRun(ctx, wire.JobRun{Job: "j", ScheduledAt: old, Result: "running"})
	_, _ = s.AddJobRun(ctx, wire.JobRun{Job: "j", ScheduledAt: recent, Result: "ok"})
	_, _ = s.SaveItems(ctx, "t", []trackers.Item{item("old", old, "1")}, "c")
	_ = s.SetDesired(ctx, "a", false)
	_ = s.SetJobState(ctx, "j", old, old)

	n, err := s.Prune(ctx, cut)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 { // 1 event, 1 wake, its 1 component, 1 finished run
		t.Errorf("Prune deleted %d rows, want 4", n)
	}
	t.Run("DeletesOldHistory", func(t *testing.T) {
		if evs, _ := s.StateEvents(ctx, "", 0); len(evs) != 1 || !evs[0].At.Equal(recent) {
			t.Errorf("events = %+v", evs)
		}
		if ws, _ := s.Wakes(ctx, 0); len(ws) != 1 || ws[0].ID != keep {
			t.Errorf("wakes = %+v", ws)
		}
		if runs, _ := s.JobRuns(ctx, "j", 0); len(runs) != 2 {
			t.Errorf("runs = %+v, want the recent one and the running one", runs)
		}
	})
	t.Run("KeepsItemsDesiredAndJobState", func(t *testing.T) {
		if n, _ := s.CountItems(ctx, "t"); n != 1 {
			t.Errorf("items = %d", n)
		}
		if d, _ := s.Desired(ctx); len(d) != 1 {
			t.Errorf("desired = %v", d)
		}
		if l, _, _ := s.JobState(ctx, "j"); !l.Equal(old) {
			t.Errorf("job state = %v", l)
		}
	})
}

func TestChecks(t *testing.T) {
	ctx := ctxT(t)
	s := openTemp(t)
	_, _ = s.SaveItems(ctx, "t", []trackers.Item{item("a", time.Now(), "1")}, "")
	for _, mode := range []string{"PASSIVE", "FULL", "RESTART", "TRUNCATE", "full"} {
		t.Run("Checkpoint"+mode+"Succeeds", func(t *testing.T) {
			if err := s.Checkpoint(ctx, mode); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("CheckpointRefusesAnUnknownMode", func(t *testing.T) {
		if err := s.Checkpoint(ctx, "FULL); DROP TABLE items; --"); err == nil {
			t.Fatal("an unknown mode was accepted")
		}
	})
	t.Run("QuickAndIntegrityCheckPassOnAHealthyStore", func(t *testing.T) {
		if err := s.QuickCheck(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.IntegrityCheck(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// TestConcurrentWithReopen runs readers and writers while the store is
// closed and reopened under them: every call succeeds or fails with
// ErrClosed, none panics or sees a closed pool.
func TestConcurrentWithReopen(t *testing.T) {
	ctx := ctxT(t)
	s := openTemp(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				switch i % 4 {
				case 0:
					_, err = s.SaveItems(ctx, "t", []trackers.Item{item(fmt.Sprintf("%d-%d", g, i), time.Now(), "1")}, fmt.Sprint(i))
				case 1:
					_, err = s.Items(ctx, "t", ItemQuery{Limit: 5})
				case 2:
					err = s.AddStateEvent(ctx, StateEvent{Component: "c", State: "ready"})
				case 3:
					_, err = s.Wakes(ctx, 3)
				}
				if err != nil && !errors.Is(err, ErrClosed) {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for i := range 20 {
		var err error
		if i%2 == 0 {
			err = s.Close(ctx)
		} else {
			err = s.Reopen(ctx)
		}
		if err != nil {
			t.Errorf("close/reopen %d: %v", i, err)
		}
		_ = s.State()
		_ = s.Verify()
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("call during reopen: %v", err)
	}
	if err := s.Reopen(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
}
