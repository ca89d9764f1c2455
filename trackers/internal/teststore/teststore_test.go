package teststore

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/rouse-dev/rouse/trackers"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func items(ids ...string) []trackers.Item {
	var out []trackers.Item
	for i, id := range ids {
		out = append(out, trackers.Item{ID: id, Time: time.Unix(int64(1000+i), 0), Data: []byte(`{"n":1}`)})
	}
	return out
}

func TestStore(t *testing.T) {
	t.Run("ItStoresDeduplicatesAndReadsBackInOrder", func(t *testing.T) {
		st := Open(t)
		ctx := context.Background()
		if n, err := st.SaveItems(ctx, "a", items("x", "y"), "c1"); err != nil || n != 2 {
			t.Fatalf("save = %d, %v", n, err)
		}
		if n, err := st.SaveItems(ctx, "a", items("y", "z"), ""); err != nil || n != 1 {
			t.Fatalf("second save = %d, %v; want 1 new", n, err)
		}
		if got := st.IDs("a"); len(got) != 3 || got[0] != "x" || got[1] != "y" || got[2] != "z" {
			t.Errorf("ids = %v", got)
		}
		if st.Len("a") != 3 || st.Len("b") != 0 || st.CursorOf("a") != "c1" {
			t.Errorf("len %d/%d cursor %q", st.Len("a"), st.Len("b"), st.CursorOf("a"))
		}
		if d := string(st.All("a")[0].Data); d != `{"n":1}` {
			t.Errorf("data = %s", d)
		}
		st.SetCursor("b", "c2")
		if st.CursorOf("b") != "c2" || st.Len("b") != 0 {
			t.Errorf("SetCursor stored %d items, cursor %q", st.Len("b"), st.CursorOf("b"))
		}
	})

	t.Run("AllPagesThroughMoreThanOnePage", func(t *testing.T) {
		st := Open(t)
		var ids []string
		for i := range 2500 {
			ids = append(ids, string(rune('a'+i%26))+time.Duration(i).String())
		}
		if _, err := st.SaveItems(context.Background(), "p", items(ids...), ""); err != nil {
			t.Fatal(err)
		}
		if got := st.All("p"); len(got) != 2500 || got[2499].ID != ids[2499] {
			t.Fatalf("listed %d items", len(got))
		}
	})

	t.Run("ItWorksInsideASynctestBubble", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := Open(t)
			done := make(chan error)
			go func() {
				_, err := st.SaveItems(context.Background(), "s", items("1"), "2")
				done <- err
			}()
			synctest.Wait()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Hour)
			if st.Len("s") != 1 || st.CursorOf("s") != "2" {
				t.Fatalf("len %d cursor %q", st.Len("s"), st.CursorOf("s"))
			}
		})
	})
}

func TestFaulty(t *testing.T) {
	t.Run("AFailedSaveStoresNothingAndTheNextOneGoesThrough", func(t *testing.T) {
		st := Open(t)
		fail := true
		f := &Faulty{Store: st, BeforeSave: func(context.Context, string, []trackers.Item, string) error {
			if fail {
				fail = false
				return errors.New("disk full")
			}
			return nil
		}}
		if _, err := f.SaveItems(context.Background(), "f", items("1"), "c"); err == nil {
			t.Fatal("no error")
		}
		if st.Len("f") != 0 || st.CursorOf("f") != "" {
			t.Fatal("a failed save stored something")
		}
		if n, err := f.SaveItems(context.Background(), "f", items("1"), "c"); err != nil || n != 1 {
			t.Fatalf("save = %d, %v", n, err)
		}
		if f.Calls() != 2 || f.Saves() != 1 || st.CursorOf("f") != "c" {
			t.Fatalf("calls %d saves %d cursor %q", f.Calls(), f.Saves(), st.CursorOf("f"))
		}
	})

	t.Run("AHangingSaveEndsWithItsContext", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &Faulty{Store: Open(t), BeforeSave: func(ctx context.Context, _ string, _ []trackers.Item, _ string) error {
				<-ctx.Done()
				return ctx.Err()
			}}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			began := time.Now()
			if _, err := f.SaveItems(ctx, "h", items("1"), ""); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v", err)
			}
			if d := time.Since(began); d != time.Minute {
				t.Fatalf("hung %v, want the context's minute", d)
			}
		})
	})
}
