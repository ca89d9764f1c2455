package agent

import (
	"context"
	"slices"
	"strings"
	"testing"
)

func TestReadyShowsErrorsOnlyWithDetail(t *testing.T) {
	a, stop := testAgent(t, t.TempDir(), []spec{{name: "web", p: &probe{failN: 1 << 30}}})
	defer stop()
	restoreNow(t, a, "manual", false)
	ctx := context.Background()
	if r := a.Ready(ctx, false); r.Ready || !slices.Equal(r.Reasons, []string{"web is failed"}) {
		t.Fatalf("without detail: %+v", r)
	}
	if r := a.Ready(ctx, true); r.Ready || len(r.Reasons) != 1 || !strings.Contains(r.Reasons[0], "refused") {
		t.Fatalf("with detail: %+v", r)
	}
}
