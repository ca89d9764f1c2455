package trackers

import (
	"errors"
	"log/slog"
	"testing"
)

type countingHost struct{ got []State }

func (h *countingHost) Report(s State, _ error) { h.got = append(h.got, s) }
func (h *countingHost) Logger() *slog.Logger    { return slog.Default() }

func TestReporterDropsRepeatsButNotErrors(t *testing.T) {
	var r Reporter
	h := &countingHost{}
	r.Report(h, StateStarting, nil)
	r.Report(h, StateStarting, nil)                   // a repeat: dropped
	r.Report(h, StateStarting, errors.New("refused")) // carries an error: passed
	r.Report(h, StateReady, nil)
	r.Report(h, StateReady, nil) // dropped
	r.Set(StateStarting)         // the agent set it (a wake): not reported
	r.Report(h, StateReady, nil) // a change again: passed
	want := []State{StateStarting, StateStarting, StateReady, StateReady}
	if len(h.got) != len(want) {
		t.Fatalf("reported %v, want %v", h.got, want)
	}
	for i := range want {
		if h.got[i] != want[i] {
			t.Fatalf("reported %v, want %v", h.got, want)
		}
	}
	if r.Last() != StateReady {
		t.Fatalf("Last = %v", r.Last())
	}
}
