package config

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/http"
)

var benchKinds = trackers.NewKinds(http.Kind)

// httpEntries is a config of n http trackers, each depending on the one
// before, and n/10 jobs: the shape tests/bench starts the agent on.
func httpEntries(n int) string {
	var b strings.Builder
	b.WriteString("deadlines: {tracker: 60s, wake: 10m}\nscheduler: {enabled: true}\nlog: {level: warn}\ntrackers:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: c%04d\n    kind: http\n    url: http://127.0.0.1:9330/c/c%04d?since={{.Since}}\n    interval: 1h\n    needs_network: false\n    cursor: {from: none}\n", i, i)
		if i > 0 {
			fmt.Fprintf(&b, "    depends_on: [c%04d]\n", i-1)
		}
	}
	b.WriteString("jobs:\n")
	for i := range n / 10 {
		fmt.Fprintf(&b, "  - name: j%03d\n    schedule: \"%d 3 * * *\"\n    command: [sh, -c, \"echo %d\"]\n", i, i%60, i)
	}
	return b.String()
}

// BenchmarkParse1000 parses a config of 1,000 http trackers and 100 jobs
// and reports the time per parse against the goal of 20 ms.
//
//	go test -run '^$' -bench Parse1000 -benchmem ./agent/config
func BenchmarkParse1000(b *testing.B) {
	src := []byte(httpEntries(1000))
	if _, err := Parse("bench.yaml", src, benchKinds); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for b.Loop() {
		if _, err := Parse("bench.yaml", src, benchKinds); err != nil {
			b.Fatal(err)
		}
	}
	per := time.Since(start) / time.Duration(b.N)
	cpu := (cpuTime() - cpu0) / time.Duration(b.N)
	b.ReportMetric(float64(per.Microseconds())/1000, "ms/parse")
	b.ReportMetric(float64(cpu.Microseconds())/1000, "cpu-ms/parse")
	b.ReportMetric(float64(per)/float64(20*time.Millisecond), "x-goal")
	b.Logf("%d bytes, 1,000 trackers + 100 jobs: %v per parse, %v CPU (goal 20 ms)", len(src), per, cpu)
}

// BenchmarkYAMLOnly is the share of BenchmarkParse1000 that is yaml.v3
// building its node tree, which Parse cannot go below.
func BenchmarkYAMLOnly(b *testing.B) {
	src := []byte(httpEntries(1000))
	b.ReportAllocs()
	for b.Loop() {
		var n yaml.Node
		if err := yaml.Unmarshal(src, &n); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkYAMLDecoder(b *testing.B) {
	src := []byte(httpEntries(1000))
	b.ReportAllocs()
	for b.Loop() {
		var n yaml.Node
		if err := yaml.NewDecoder(bytes.NewReader(src)).Decode(&n); err != nil {
			b.Fatal(err)
		}
	}
}
