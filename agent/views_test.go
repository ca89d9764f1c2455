package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/wire"
)

func TestViews(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		a, stop := testAgent(t, dir, []spec{
			{name: "db", p: &probe{latency: 10 * time.Millisecond}},
			{name: "app", p: &probe{latency: 20 * time.Millisecond}, requires: []string{"db"}},
		})
		defer stop()
		restoreNow(t, a, "boot", false)
		time.Sleep(2 * viewInterval)
		synctest.Wait()

		ctx := context.Background()
		body := a.HealthJSON(ctx)
		var h wire.Health
		if err := json.Unmarshal(body, &h); err != nil {
			t.Fatalf("health view: %v: %s", err, body)
		}
		if len(h.Components) != 2 || h.Components[1].Name != "app" || h.Components[1].State != "ready" {
			t.Fatalf("health view components = %+v", h.Components)
		}
		if h.LastWake == nil || h.LastWake.DetectedBy != "boot" || !h.LastWake.Done || h.LastWake.Restore.Ready != 2 {
			t.Fatalf("health view last wake = %+v", h.LastWake)
		}
		var raw struct {
			LastWake map[string]json.RawMessage `json:"last_wake"`
		}
		if err := json.Unmarshal(body, &raw); err != nil {
			t.Fatal(err)
		}
		if _, ok := raw.LastWake["components"]; ok {
			t.Errorf("the health view carries the last wake's component entries: %s", raw.LastWake["components"])
		}
		var sv wire.Services
		if err := json.Unmarshal(a.ServicesJSON(ctx), &sv); err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(a.Services(ctx))
		got, _ := json.Marshal(sv.Services)
		if !bytes.Equal(got, want) {
			t.Errorf("services view\n%s\nwant\n%s", got, want)
		}

		for name, pair := range map[string][2][]byte{
			"health":   {a.HealthJSON(ctx), a.HealthGzip(ctx)},
			"services": {a.ServicesJSON(ctx), a.ServicesGzip(ctx)},
		} {
			zr, err := gzip.NewReader(bytes.NewReader(pair[1]))
			if err != nil {
				t.Fatalf("%s gzipped: %v", name, err)
			}
			plain, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(plain, pair[0]) {
				t.Errorf("%s gzipped is not the plain view (err %v)", name, err)
			}
		}
		{ // served as rendered until something changes
			b1 := a.HealthJSON(ctx)
			time.Sleep(viewMaxAge / 2)
			if b2 := a.HealthJSON(ctx); &b1[0] != &b2[0] {
				t.Error("the health view was rendered again with nothing changed")
			}
			a.setState(a.unit("app"), trackers.StateDegraded, nil)
			time.Sleep(viewInterval)
			synctest.Wait()
			if err := json.Unmarshal(a.HealthJSON(ctx), &h); err != nil {
				t.Fatal(err)
			}
			if h.Components[1].State != "degraded" || h.Status != wire.StatusDegraded {
				t.Errorf("a state change is not in the view one interval later: %s %+v", h.Status, h.Components[1])
			}
		}
		{ // an unchanged document is not compressed again; a changed one is
			gz1, sgz1 := a.HealthGzip(ctx), a.ServicesGzip(ctx)
			a.refreshViews()
			if gz2, sgz2 := a.HealthGzip(ctx), a.ServicesGzip(ctx); &gz1[0] != &gz2[0] || &sgz1[0] != &sgz2[0] {
				t.Error("an unchanged view was compressed again")
			}
			a.setState(a.unit("app"), trackers.StateReady, nil)
			a.refreshViews()
			gz3 := a.HealthGzip(ctx)
			if &gz1[0] == &gz3[0] {
				t.Fatal("a changed view kept the old compressed body")
			}
			zr, err := gzip.NewReader(bytes.NewReader(gz3))
			if err != nil {
				t.Fatal(err)
			}
			if plain, err := io.ReadAll(zr); err != nil || !bytes.Equal(plain, a.HealthJSON(ctx)) {
				t.Errorf("the new compressed body is not the new view (err %v)", err)
			}
		}
		{ // 100 changes over 500 ms are at most one rendering per interval
			time.Sleep(2 * viewInterval)
			before := a.views.renders.Load()
			for i := range 100 {
				s := trackers.StateDegraded
				if i%2 == 1 {
					s = trackers.StateReady
				}
				a.setState(a.unit("db"), s, nil)
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(2 * viewInterval)
			synctest.Wait()
			// 600 ms: one at the first change, then at most one per interval.
			if n := a.views.renders.Load() - before; n < 1 || n > 1+600/50 {
				t.Errorf("100 changes over 500 ms rendered %d times, want 1 to %d", n, 1+600/50)
			}
			if err := json.Unmarshal(a.HealthJSON(ctx), &h); err != nil {
				t.Fatal(err)
			}
			if h.Components[0].State != "ready" {
				t.Errorf("the view does not show the last change: %+v", h.Components[0])
			}
		}
	})
}

// A rendering encodes again only the components whose entry changed, and
// its bytes are exactly what encoding the whole document gives.
func TestTheViewsEncodeOnlyChangedComponents(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		a, stop := testAgent(t, dir, []spec{
			{name: "db", p: &probe{latency: 10 * time.Millisecond}},
			{name: "app", p: &probe{latency: 20 * time.Millisecond}, requires: []string{"db"}},
			{name: "web", p: &probe{latency: 20 * time.Millisecond}, requires: []string{"app"}},
		})
		defer stop()
		restoreNow(t, a, "boot", false)
		time.Sleep(2 * viewInterval)
		synctest.Wait()
		ctx := context.Background()
		whole := func() []byte {
			b, err := json.Marshal(a.Health(ctx))
			if err != nil {
				t.Fatal(err)
			}
			return append(b, '\n')
		}
		encoded := func() int {
			a.views.mu.Lock()
			defer a.views.mu.Unlock()
			return a.views.encoded
		}
		a.refreshViews()
		n0 := encoded()
		a.refreshViews()
		if n := encoded() - n0; n != 0 {
			t.Errorf("nothing changed, %d entries encoded again", n)
		}
		a.setState(a.unit("web"), trackers.StateDegraded, errors.New("slow")) // the leaf: nothing follows it
		r := a.refreshViews()
		if n := encoded() - n0; n != 1 {
			t.Errorf("one component changed, %d entries encoded again", n)
		}
		if want := whole(); !bytes.Equal(r.health.bytes(), want) {
			t.Errorf("health view\n%s\nwant\n%s", r.health.bytes(), want)
		}
		var h wire.Health
		if err := json.Unmarshal(r.health.bytes(), &h); err != nil {
			t.Fatal(err)
		}
		if h.Components[2].State != "degraded" || h.Components[2].LastError != "slow" || h.Components[1].State != "ready" {
			t.Errorf("components after the change: %+v", h.Components)
		}
	})
}

// sameService compares every field of wire.Service: each field (and each
// field of a pointed-to struct) set on its own makes it report a change.
func TestSameServiceSeesEveryField(t *testing.T) {
	nonZero := func(t *testing.T, v reflect.Value) {
		switch v.Kind() {
		case reflect.String:
			v.SetString("x")
		case reflect.Int, reflect.Int64:
			v.SetInt(7)
		case reflect.Bool:
			v.SetBool(true)
		case reflect.Slice:
			v.Set(reflect.MakeSlice(v.Type(), 1, 1))
			if v.Index(0).Kind() == reflect.String {
				v.Index(0).SetString("x")
			}
		case reflect.Interface:
			v.Set(reflect.ValueOf(map[string]int{"x": 1}))
		case reflect.Struct:
			if v.Type() != reflect.TypeFor[time.Time]() {
				t.Fatalf("no test value for %s", v.Type())
			}
			v.Set(reflect.ValueOf(time.Unix(7, 0)))
		case reflect.Pointer:
			v.Set(reflect.New(v.Type().Elem()))
		default:
			t.Fatalf("no test value for %s", v.Type())
		}
	}
	st := reflect.TypeFor[wire.Service]()
	for i := range st.NumField() {
		f := st.Field(i)
		var a, b wire.Service
		nonZero(t, reflect.ValueOf(&b).Elem().Field(i))
		if sameService(&a, &b) || sameService(&b, &a) {
			t.Errorf("a change of %s is not seen", f.Name)
		}
		if c := b; !sameService(&b, &c) {
			t.Errorf("equal entries with %s set are not the same", f.Name)
		}
		// A slice set to empty encodes [] where nil encodes null.
		if f.Type.Kind() == reflect.Slice {
			a, b = wire.Service{}, wire.Service{}
			reflect.ValueOf(&b).Elem().Field(i).Set(reflect.MakeSlice(f.Type, 0, 0))
			if sameService(&a, &b) {
				t.Errorf("%s: nil and empty are not told apart", f.Name)
			}
		}
		if f.Type.Kind() != reflect.Pointer || f.Type.Elem().Kind() != reflect.Struct || f.Type.Elem() == reflect.TypeFor[time.Time]() {
			continue
		}
		et := f.Type.Elem()
		for j := range et.NumField() {
			var a, b wire.Service
			reflect.ValueOf(&a).Elem().Field(i).Set(reflect.New(et))
			pb := reflect.New(et)
			reflect.ValueOf(&b).Elem().Field(i).Set(pb)
			nonZero(t, pb.Elem().Field(j))
			if sameService(&a, &b) || sameService(&b, &a) {
				t.Errorf("a change of %s.%s is not seen", f.Name, et.Field(j).Name)
			}
			// Equal values behind different pointers are the same.
			c := b
			pc := reflect.New(et)
			pc.Elem().Set(pb.Elem())
			reflect.ValueOf(&c).Elem().Field(i).Set(pc)
			if !sameService(&b, &c) {
				t.Errorf("%s.%s: equal values behind two pointers are not the same", f.Name, et.Field(j).Name)
			}
		}
	}
}
