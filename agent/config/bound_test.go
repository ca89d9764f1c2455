package config

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// parseBounded parses src and fails the test when it took more than
// limit bytes of heap at any point (sampled as the total allocated,
// which bounds the peak).
func parseBounded(t testing.TB, src []byte, limit uint64) error {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Parse("rouse.yaml", src, testKinds)
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > limit {
		t.Fatalf("Parse of %d bytes allocated %d MB; the bound is %d MB (err %v)", len(src), got>>20, limit>>20, err)
	}
	return err
}

const memBound = 64 << 20

func TestHostileConfigs(t *testing.T) {
	big := strings.Repeat("x", 1<<20-200)
	var refs strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&refs, "      K%d: *big\n", i)
	}
	// The first alias to pass 16 MiB is the 32nd reference of 512 KiB,
	// on line 36; "-\n" is two indicators a line.
	for _, tc := range []struct {
		name, src, want string
	}{
		{"AOneMBScalarReferencedAThousandTimes",
			"trackers:\n  - name: a\n    kind: probe\n    url: &big " + big[:1<<19] + "\n    env:\n" + refs.String(),
			"rouse.yaml:36: aliases expand to more than 16 MiB"},
		{"ABillionLaughs", laughs(9, 10), "rouse.yaml:6: aliases expand to more than 131072 values"},
		{"MergeKeysThatDoubleAtEachLevel", merges(40), "rouse.yaml:15: aliases expand to more than 16 MiB"},
		{"AFileOverTheSizeLimit", "a: " + big + big + "\n", fmt.Sprintf("rouse.yaml:1: the file is larger than 1 MiB (%d bytes); nothing was read", 2*len(big)+4)},
		{"AFileOfDenseFlowValues", "[" + strings.Repeat("a,", 1<<18) + "a]", "rouse.yaml:1: the file holds more than 65536 YAML values and lines; nothing was read"},
		{"AFileOfManyLines", strings.Repeat("-\n", 1<<17), "rouse.yaml:32769: the file holds more than 65536 YAML values and lines"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := parseBounded(t, []byte(tc.src), memBound)
			var es Errors
			if !errors.As(err, &es) || len(es) != 1 || !errors.Is(err, ErrTooLarge) {
				t.Fatalf("want one ErrTooLarge, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %q; want %q", err, tc.want)
			}
		})
	}
	t.Run("ALargeButHonestConfigIsRead", func(t *testing.T) {
		src := manyEntries(1000)
		if err := parseBounded(t, []byte(src), memBound); err != nil {
			t.Fatal(err)
		}
	})
}

// laughs nests levels of lists, each of width references to the last.
func laughs(levels, width int) string {
	src := "a: &a [" + strings.TrimSuffix(strings.Repeat("x, ", width), ", ") + "]\n"
	prev := "a"
	for i := 1; i < levels; i++ {
		n := fmt.Sprintf("l%d", i)
		src += n + ": &" + n + " [" + strings.TrimSuffix(strings.Repeat("*"+prev+", ", width), ", ") + "]\n"
		prev = n
	}
	return src
}

// merges builds mappings that each merge the previous one twice over.
func merges(levels int) string {
	src := "m0: &m0 {a: " + strings.Repeat("y", 1000) + "}\n"
	for i := 1; i < levels; i++ {
		src += fmt.Sprintf("m%d: &m%d {<<: [*m%d, *m%d], k%d: v}\n", i, i, i-1, i-1, i)
	}
	return src
}

// manyEntries is a config of n trackers and n/10 jobs, as a large user
// would write it.
func manyEntries(n int) string {
	var b strings.Builder
	b.WriteString("deadlines: {tracker: 60s, wake: 10m}\nlog: {level: warn}\ntrackers:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: c%04d\n    kind: probe\n    url: http://127.0.0.1:9330/c/c%04d\n    interval: 1h\n    needs_network: false\n    tags: [a, b]\n", i, i)
		if i > 0 {
			fmt.Fprintf(&b, "    depends_on: [c%04d]\n", i-1)
		}
	}
	b.WriteString("jobs:\n")
	for i := range n / 10 {
		fmt.Fprintf(&b, "  - name: j%03d\n    schedule: \"%d 3 * * *\"\n    command: [sh, -c, \"echo %d\"]\n    misfire: coalesce\n", i, i%60, i)
	}
	return b.String()
}
