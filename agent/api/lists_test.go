package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/rouse-dev/rouse/agent/api"
	"github.com/rouse-dev/rouse/agent/api/apitest"
	"github.com/rouse-dev/rouse/wire"
)

// fakeItems serves items newest first with the store's batch rules:
// Cursor is the last Seq seen, MaxBytes ends a batch (the first item always
// comes), OmitAbove leaves data out.
func fakeItems(sizes []int) func(context.Context, string, api.ItemQuery) ([]api.Item, error) {
	datas := map[int][]byte{}
	return func(_ context.Context, _ string, q api.ItemQuery) ([]api.Item, error) {
		before := int64(len(sizes) + 1)
		if q.Cursor != "" {
			n, err := strconv.ParseInt(q.Cursor, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("cursor %q: %w", q.Cursor, api.ErrBadRequest)
			}
			before = n
		}
		var out []api.Item
		var total int64
		for seq := before - 1; seq >= 1 && len(out) < q.Limit; seq-- {
			size := sizes[seq-1]
			data := datas[size]
			if data == nil {
				data = []byte(`"` + strings.Repeat("x", size-2) + `"`)
				datas[size] = data
			}
			if q.OmitAbove > 0 && int64(size) > q.OmitAbove {
				data = nil
			}
			if len(out) > 0 && total+int64(len(data)) > q.MaxBytes {
				break
			}
			total += int64(len(data))
			out = append(out, api.Item{Seq: seq, ID: "i" + strconv.FormatInt(seq, 10), Data: data, Size: int64(size)})
		}
		return out, nil
	}
}

func getItemsPage(t *testing.T, s *api.Server, path string) (wire.Items, int) {
	t.Helper()
	w := do(s, req{path: path})
	if w.Code != 200 {
		t.Fatalf("%s: status %d: %s", path, w.Code, w.Body)
	}
	n := w.Body.Len()
	// Data is decoded only as far as its length (decoding megabytes into
	// interfaces is slow under the race detector).
	var raw struct {
		Items []struct {
			Seq          int64           `json:"seq"`
			Data         json.RawMessage `json:"data"`
			OmittedBytes int64           `json:"omitted_bytes"`
		} `json:"items"`
		NextCursor string `json:"next_cursor"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	page := wire.Items{NextCursor: raw.NextCursor}
	for _, it := range raw.Items {
		var data any
		if string(it.Data) != "null" {
			data = len(it.Data)
		}
		page.Items = append(page.Items, wire.Item{Seq: it.Seq, Data: data, OmittedBytes: it.OmittedBytes})
	}
	return page, n
}

func TestItemPagesAreBoundedInBytesAndLoseNothing(t *testing.T) {
	const mib = 1 << 20
	// 12 items of 700 KiB, one of 9 MiB (stored before max_item_bytes),
	// 50 small ones: every one must come back once, in order, across pages
	// of at most 4 MiB of data.
	var sizes []int
	for range 12 {
		sizes = append(sizes, 700<<10)
	}
	sizes = append(sizes, 9*mib)
	for range 50 {
		sizes = append(sizes, 100)
	}
	s := newTestServer(t, &apitest.Backend{ItemsFunc: fakeItems(sizes)})
	next := int64(len(sizes))
	cursor, pages := "", 0
	for {
		path := "/api/v1/trackers/t/items?limit=1000"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		page, n := getItemsPage(t, s, path)
		pages++
		if n > 4*mib+64<<10 {
			t.Fatalf("page %d is %d bytes, more than the 4 MiB cap", pages, n)
		}
		for _, it := range page.Items {
			if it.Seq != next {
				t.Fatalf("page %d: item seq %d, want %d", pages, it.Seq, next)
			}
			next--
			if sizes[it.Seq-1] > 4*mib {
				if it.Data != nil || it.OmittedBytes != int64(sizes[it.Seq-1]) {
					t.Fatalf("the 9 MiB item: data %v, omitted_bytes %d", it.Data != nil, it.OmittedBytes)
				}
			} else if n, ok := it.Data.(int); !ok || n != sizes[it.Seq-1] {
				t.Fatalf("item %d: data not as stored", it.Seq)
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if next != 0 {
		t.Fatalf("paging ended with %d items not seen", next)
	}
	if pages < 3 {
		t.Fatalf("%d pages for 8 MB of items: the byte cap did not page", pages)
	}
}

func TestWakePagesAreBoundedInBytes(t *testing.T) {
	// 150 wakes of about 45 KB each (many components with long errors).
	long := strings.Repeat("e", 400)
	wake := func(id int64) wire.Wake {
		w := wire.Wake{ID: id, DetectedBy: "logind"}
		for i := range 100 {
			w.Components = append(w.Components, wire.WakeComponent{Name: fmt.Sprint("c", i), State: "failed", Error: long})
		}
		return w
	}
	b := &apitest.Backend{WakesFunc: func(_ context.Context, limit int, before int64) ([]wire.Wake, error) {
		if before == 0 {
			before = 151
		}
		var out []wire.Wake
		for id := before - 1; id >= 1 && len(out) < limit; id-- {
			out = append(out, wake(id))
		}
		return out, nil
	}}
	s := newTestServer(t, b)
	seen, cursor, pages := int64(150), "", 0
	for {
		w := do(s, req{path: "/api/v1/wakes?limit=1000&cursor=" + cursor})
		if w.Code != 200 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if w.Body.Len() > 4<<20+64<<10 {
			t.Fatalf("a page of %d bytes", w.Body.Len())
		}
		pages++
		var page struct {
			Wakes []struct {
				ID int64 `json:"id"`
			} `json:"wakes"`
			NextCursor string `json:"next_cursor"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil {
			t.Fatal(err)
		}
		for _, wk := range page.Wakes {
			if wk.ID != seen {
				t.Fatalf("wake %d, want %d", wk.ID, seen)
			}
			seen--
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if seen != 0 || pages < 2 {
		t.Fatalf("%d wakes never listed, %d pages", seen, pages)
	}
}

func TestAListThatFailsMidAnswerIsCutNotShortened(t *testing.T) {
	calls := 0
	b := &apitest.Backend{ItemsFunc: func(_ context.Context, _ string, q api.ItemQuery) ([]api.Item, error) {
		calls++
		if calls > 1 {
			return nil, fmt.Errorf("the store closed: %w", api.ErrUnavailable)
		}
		return []api.Item{{Seq: 9, ID: "a", Data: []byte("1"), Size: 1}}, nil
	}}
	s := newListening(t, b, "127.0.0.1:0")
	serve(t, s)
	r, _ := http.NewRequest("GET", "http://"+s.Addr().String()+"/api/v1/trackers/t/items", nil)
	r.Header.Set("Authorization", "Bearer "+testToken)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(r)
	if err != nil {
		return // cut before the status line went out: also not a short answer
	}
	defer resp.Body.Close()
	if body, err := io.ReadAll(resp.Body); err == nil {
		t.Fatalf("a failed answer read as complete: %s", body)
	}
}

func TestAFirstBatchErrorIsAnOrdinaryError(t *testing.T) {
	s := newTestServer(t, &apitest.Backend{ItemsFunc: func(context.Context, string, api.ItemQuery) ([]api.Item, error) {
		return nil, fmt.Errorf("cursor: %w", api.ErrBadRequest)
	}})
	w := do(s, req{path: "/api/v1/trackers/t/items?cursor=zz"})
	if w.Code != 400 || !strings.Contains(w.Body.String(), wire.CodeBadRequest) {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
}
