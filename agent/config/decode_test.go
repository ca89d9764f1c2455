package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rouse-dev/rouse/trackers"
)

// mode is a mapping with a scalar shorthand (trackers.ScalarShorthand)
// that rejects lower-case text.
type mode struct {
	Speed string `yaml:"speed"`
	Gear  int    `yaml:"gear"`
}

func (m *mode) SetScalar(s string) error {
	if strings.ToUpper(s) != s {
		return errors.New("must be upper case")
	}
	m.Speed = s
	return nil
}

type richCommon struct {
	Shared string `yaml:"shared"`
}

// richOptions exercises every shape of options struct a kind may use.
type richOptions struct {
	richCommon `yaml:",inline"`
	Port       uint16             `yaml:"port"`
	Ratio      float64            `yaml:"ratio"`
	Counts     map[string]int     `yaml:"counts"`
	Limit      *int               `yaml:"limit"`
	Mode       mode               `yaml:"mode"`
	Mode2      mode               `yaml:"mode2"`
	Steps      []time.Duration    `yaml:"steps"`
	Nested     *struct{ On bool } `yaml:"nested"`
	Keep       string             `yaml:"keep"`
	hidden     int
}

var richKind = trackers.Kind{Name: "rich", NewOptions: func() any { return &richOptions{Keep: "default", Port: 1} }}

func TestDecodeEveryOptionShape(t *testing.T) {
	c := parseOK(t, `trackers:
  - name: r
    kind: rich
    shared: s
    port: 8080
    ratio: 0.5
    counts: {x: 1, y: 2}
    limit: 3
    mode: FAST
    mode2: {speed: slow, gear: 2}
    steps: [1s, 2m]
    nested: {on: true}
    keep: ~
`)
	o := c.Trackers[0].Options.(*richOptions)
	limit := 3
	want := &richOptions{
		richCommon: richCommon{Shared: "s"}, Port: 8080, Ratio: 0.5,
		Counts: map[string]int{"x": 1, "y": 2},
		Limit:  &limit, Mode: mode{Speed: "FAST"}, Mode2: mode{Speed: "slow", Gear: 2},
		Steps: []time.Duration{time.Second, 2 * time.Minute}, Nested: &struct{ On bool }{On: true}, Keep: "default",
	}
	if o.hidden != 0 {
		t.Errorf("unexported field set")
	}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("got  %+v\nwant %+v", o, want)
	}
}

func TestDecodeErrorsForEveryOptionShape(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"UintOverflow", "port: 70000", `f:4: trackers[0].port: must be a non-negative integer, got "70000"`},
		{"NegativeUint", "port: -1", `f:4: trackers[0].port: must be a non-negative integer, got "-1"`},
		{"FloatFromText", "ratio: half", `f:4: trackers[0].ratio: must be a number, got "half"`},
		{"MapValueType", "counts: {x: many}", `f:4: trackers[0].counts.x: must be an integer, got "many"`},
		{"MapDuplicateKey", "counts: {x: 1, x: 2}", `f:4: trackers[0].counts.x: duplicate key, first set at line 4`},
		{"MapFromAList", "counts: [1]", `f:4: trackers[0].counts: must be a mapping, not a list`},
		{"PointerToInt", "limit: lots", `f:4: trackers[0].limit: must be an integer, got "lots"`},
		{"ScalarShorthandRefused", "mode: slow", `f:4: trackers[0].mode: must be upper case, got "slow"`},
		{"ScalarShorthandsMappingKeepsUnknownKeys", "mode: {sped: x}", `f:4: trackers[0].mode.sped: unknown key; did you mean "speed"? expected one of: gear, speed`},
		{"DurationInAList", "steps: [1s, often]", `f:4: trackers[0].steps[1]: must be a duration like "10s" or "1m30s", got "often"`},
		{"DurationFromAMapping", "steps: [{a: 1}]", `f:4: trackers[0].steps[0]: must be a duration like "10s" or "1m30s", not a mapping`},
		{"NestedUnknownKey", "nested: {of: true}", `f:4: trackers[0].nested.of: unknown key; expected one of: on`},
		{"StringFromAList", "keep: [a]", `f:4: trackers[0].keep: must be a string, not a list`},
		{"UnexportedFieldIsNotAKey", "hidden: 1", `f:4: trackers[0].hidden: unknown key; expected one of: counts, keep, limit, mode, mode2, nested, port, ratio, shared, steps, or for every tracker: deadline, depends_on, health, kind, name, needs_network, on_demand, required, start_limit, start_window`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f", []byte("trackers:\n  - name: r\n    kind: rich\n    "+tt.yaml+"\n"), testKinds)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err:\n got %v\nwant %s", err, tt.want)
			}
		})
	}
}

// TestScalarFastPathsMatchYAML checks that the bool and integer readers,
// which skip yaml.v3's Node.Decode for plain spellings, read every scalar
// as Node.Decode does, and refuse what it refuses.
func TestScalarFastPathsMatchYAML(t *testing.T) {
	for _, s := range []string{"0", "7", "-7", "017", "0o17", "0x1F", "+5", "1_000", "00", "-0",
		"9223372036854775807", "9223372036854775808", "-9223372036854775808", "18446744073709551616",
		"true", "True", "TRUE", "false", "FALSE", "yes", "on", "1.5", "x", `"5"`, "!!int 5", "!!bool true", "~"} {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte("v: "+s), &doc); err != nil {
			t.Fatal(err)
		}
		n := doc.Content[0].Content[1]
		var wi int64
		wiErr := n.Decode(&wi)
		gi, ok := intOf(n)
		if want := wiErr == nil && n.ShortTag() == "!!int"; ok != want || ok && gi != wi {
			t.Errorf("int %s: got %d, %v; yaml.v3 gives %d, %v", s, gi, ok, wi, want)
		}
		var wu uint64
		wuErr := n.Decode(&wu)
		gu, ok := uintOf(n)
		if want := wuErr == nil && n.ShortTag() == "!!int"; ok != want || ok && gu != wu {
			t.Errorf("uint %s: got %d, %v; yaml.v3 gives %d, %v", s, gu, ok, wu, want)
		}
		var wb bool
		wbErr := n.Decode(&wb)
		gb, ok := boolOf(n)
		if want := wbErr == nil && n.ShortTag() == "!!bool"; ok != want || ok && gb != wb {
			t.Errorf("bool %s: got %v, %v; yaml.v3 gives %v, %v", s, gb, ok, wb, want)
		}
	}
}
