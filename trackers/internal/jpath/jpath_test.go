package jpath

import (
	"encoding/json"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const doc = `{"recenttracks":{"track":[{"name":"a","date":{"uts":"1700000000"}},{"name":"b"}],"@attr":{"totalPages":"3"}}}`

func TestRaw(t *testing.T) {
	cases := []struct {
		path  string
		want  string
		found bool
	}{
		{"recenttracks.@attr.totalPages", `"3"`, true},
		{"recenttracks.track.1.name", `"b"`, true},
		{"recenttracks.track.9", ``, false},
		{"recenttracks.nope", ``, false},
		{"recenttracks.@attr.totalPages.deeper", ``, false},
	}
	for _, c := range cases {
		got, found, err := Raw(json.RawMessage(doc), c.path)
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		if found != c.found || string(got) != c.want {
			t.Errorf("%s = %s,%v want %s,%v", c.path, got, found, c.want, c.found)
		}
	}
	if _, _, err := Raw(json.RawMessage(`{"a":`), "a"); err == nil {
		t.Error("malformed JSON gave no error")
	}
}

func TestListAcceptsAnArrayALoneObjectAndNull(t *testing.T) {
	for in, n := range map[string]int{`[1,2,3]`: 3, `{"a":1}`: 1, `null`: 0, `[]`: 0} {
		l, err := List(json.RawMessage(in))
		if err != nil || len(l) != n {
			t.Errorf("List(%s) = %d, %v; want %d", in, len(l), err, n)
		}
	}
	if _, err := List(json.RawMessage(`"x"`)); err == nil {
		t.Error("a string was accepted as a list")
	}
}

func TestGetAndScalars(t *testing.T) {
	v, err := Decode(json.RawMessage(doc))
	if err != nil {
		t.Fatal(err)
	}
	uts, ok := Get(v, "recenttracks.track.0.date.uts")
	if !ok {
		t.Fatal("uts not found")
	}
	if n, ok := Int(uts); !ok || n != 1700000000 {
		t.Fatalf("Int = %d %v", n, ok)
	}
	if _, ok := Get(v, "recenttracks.track.1.date.uts"); ok {
		t.Fatal("missing date found")
	}
	if s, ok := String(json.Number("12.5")); !ok || s != "12.5" {
		t.Fatalf("String(number) = %q", s)
	}
	if _, ok := String(map[string]any{}); ok {
		t.Fatal("an object rendered as a string")
	}
}

func TestParseTime(t *testing.T) {
	sec := time.Unix(1700000000, 0).UTC()
	cases := []struct {
		v      any
		format string
		want   time.Time
	}{
		{"1700000000", FormatAuto, sec},
		{json.Number("1700000000"), "", sec},
		{json.Number("1700000000123"), FormatAuto, time.UnixMilli(1700000000123).UTC()},
		{"2023-11-14T22:13:20Z", FormatAuto, sec},
		{"1700000000", FormatUnix, sec},
		{"1700000000000", FormatUnixMS, sec},
		{"2023-11-14T22:13:20Z", FormatRFC3339, sec},
	}
	for _, c := range cases {
		got, err := ParseTime(c.v, c.format)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("ParseTime(%v,%s) = %v, %v; want %v", c.v, c.format, got, err, c.want)
		}
	}
	for _, bad := range []any{"yesterday", nil, map[string]any{}} {
		if _, err := ParseTime(bad, FormatAuto); err == nil {
			t.Errorf("ParseTime(%v) accepted", bad)
		}
	}
}
