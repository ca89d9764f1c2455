package store

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/trackers"
)

func TestItemsBatchesAreBoundedInBytes(t *testing.T) {
	ctx := ctxT(t)
	s := openTemp(t)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	big := `"` + strings.Repeat("x", 1000) + `"` // 1002 bytes
	var batch []trackers.Item
	for i := range 10 {
		batch = append(batch, item(fmt.Sprintf("i%d", i), base.Add(time.Duration(i)*time.Second), big))
	}
	huge := `"` + strings.Repeat("y", 50_000) + `"`
	batch = append(batch, item("huge", base.Add(time.Hour), huge))
	if _, err := s.SaveItems(ctx, "t", batch, ""); err != nil {
		t.Fatal(err)
	}
	t.Run("MaxBytesEndsTheBatchBeforeTheItemThatWouldPassIt", func(t *testing.T) {
		items, err := s.Items(ctx, "t", ItemQuery{Oldest: true, Limit: 100, MaxBytes: 3500})
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 3 || items[2].ID != "i2" {
			t.Fatalf("got %d items, want 3 of 1002 bytes under 3500", len(items))
		}
	})
	t.Run("TheFirstItemAlwaysComes", func(t *testing.T) {
		items, err := s.Items(ctx, "t", ItemQuery{Limit: 100, MaxBytes: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 1 || items[0].ID != "huge" || len(items[0].Data) != len(huge) {
			t.Fatalf("got %d items", len(items))
		}
	})
	t.Run("OmitAboveLeavesOutLargeDataButSaysItsSize", func(t *testing.T) {
		items, err := s.Items(ctx, "t", ItemQuery{Limit: 2, OmitAbove: 10_000})
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 2 || items[0].ID != "huge" || items[0].Data != nil || items[0].Size != int64(len(huge)) {
			t.Fatalf("huge item: data %d bytes, size %d", len(items[0].Data), items[0].Size)
		}
		if string(items[1].Data) != big {
			t.Fatalf("small item data %q", items[1].Data)
		}
	})
}
