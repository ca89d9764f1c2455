package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/rouse-dev/rouse/agent/config"
	"github.com/rouse-dev/rouse/agent/store"
)

// jobCorpus are configs that sit on the border between what config checks
// and what the scheduler runs.
var jobCorpus = map[string]string{
	"propfind":       "jobs:\n  - name: j\n    schedule: \"@daily\"\n    http: {url: \"http://127.0.0.1/\", method: PROPFIND}\n",
	"get":            "jobs:\n  - name: j\n    schedule: \"@daily\"\n    http: {url: \"http://127.0.0.1/\", method: GET}\n",
	"options":        "jobs:\n  - name: j\n    schedule: \"@daily\"\n    http: {url: \"http://127.0.0.1/\", method: OPTIONS, expect_status: 204}\n",
	"seconds":        "jobs:\n  - name: j\n    schedule: \"*/10 * * * * *\"\n    command: [\"true\"]\n",
	"tz-prefix":      "jobs:\n  - name: j\n    schedule: \"CRON_TZ=Europe/Berlin 0 3 * * *\"\n    command: [\"true\"]\n",
	"bad-tz-prefix":  "jobs:\n  - name: j\n    schedule: \"TZ= 0 3 * * *\"\n    command: [\"true\"]\n",
	"timezone":       "jobs:\n  - name: j\n    schedule: \"0 3 * * *\"\n    timezone: Asia/Tokyo\n    command: [\"true\"]\n",
	"no-scheme":      "jobs:\n  - name: j\n    schedule: \"@daily\"\n    http: {url: \"example.org/x\"}\n",
	"ftp":            "jobs:\n  - name: j\n    schedule: \"@daily\"\n    http: {url: \"ftp://example.org/x\"}\n",
	"status-99":      "jobs:\n  - name: j\n    schedule: \"@daily\"\n    http: {url: \"http://x/\", expect_status: 99}\n",
	"both":           "jobs:\n  - name: j\n    schedule: \"@daily\"\n    command: [\"true\"]\n    http: {url: \"http://x/\"}\n",
	"every-0":        "jobs:\n  - name: j\n    schedule: \"@every 0s\"\n    command: [\"true\"]\n",
	"reboot":         "jobs:\n  - name: j\n    schedule: \"@reboot\"\n    command: [\"true\"]\n",
	"misfire-all":    "jobs:\n  - name: j\n    schedule: \"@hourly\"\n    misfire: all\n    max_catchup: 3\n    command: [\"true\"]\n",
	"maintenance":    "maintenance: {schedule: \"@every 1h\", quick_check: \"off\"}\n",
	"bad-maint":      "maintenance: {schedule: \"61 * * * *\"}\n",
	"dup-names":      "jobs:\n  - {name: j, schedule: \"@daily\", command: [\"true\"]}\n  - {name: j, schedule: \"@daily\", command: [\"true\"]}\n",
	"reserved-names": "jobs:\n  - {name: maintenance, schedule: \"@daily\", command: [\"true\"]}\n",
}

// TestConfigCheckAcceptsWhatRunAccepts runs every config of the test
// corpus (the config parser's fuzz corpus and jobCorpus) through what
// `rouse config check` runs (config.Parse) and what `rouse run` builds
// from it (the scheduler and the units): whatever the first accepts, the
// second must accept too.
func TestConfigCheckAcceptsWhatRunAccepts(t *testing.T) {
	corpus := map[string][]byte{}
	for name, src := range jobCorpus {
		corpus[name] = []byte(src)
	}
	dir := filepath.Join("config", "testdata", "fuzz", "FuzzParse")
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		corpus["fuzz/"+f.Name()] = fuzzInput(t, b)
	}
	accepted := 0
	for name, src := range corpus {
		t.Run(name, func(t *testing.T) {
			cfg, err := config.Parse("rouse.yaml", src, probeKinds)
			if err != nil {
				return // run refuses it the same way: it parses with config.Parse
			}
			accepted++
			data := filepath.Join(t.TempDir(), "data")
			a, err := New(Options{Config: cfg, Kinds: probeKinds, DataDir: data, Logger: discard})
			if err != nil {
				t.Fatal(err)
			}
			a.store, err = store.Open(context.Background(), StorePath(data), store.Options{Logger: discard})
			if err != nil {
				t.Fatal(err)
			}
			defer a.store.Close(context.Background())
			if err := a.newScheduler(cfg); err != nil {
				t.Fatalf("config check accepts it, run refuses it: %v\n%s", err, src)
			}
			if _, _, _, err := a.buildUnits(cfg, nil, nil); err != nil {
				t.Fatalf("config check accepts it, run refuses it: %v\n%s", err, src)
			}
		})
	}
	if accepted < len(jobCorpus)/3 {
		t.Fatalf("only %d of %d configs were accepted: the corpus no longer tests the run side", accepted, len(corpus))
	}
}

// fuzzInput decodes a "go test fuzz v1" file holding one []byte.
func fuzzInput(t *testing.T, b []byte) []byte {
	t.Helper()
	_, body, _ := bytes.Cut(b, []byte("\n"))
	body = bytes.TrimSpace(body)
	body = bytes.TrimPrefix(body, []byte("[]byte("))
	body = bytes.TrimSuffix(body, []byte(")"))
	s, err := strconv.Unquote(string(body))
	if err != nil {
		t.Fatalf("corpus file: %v", err)
	}
	return []byte(s)
}
