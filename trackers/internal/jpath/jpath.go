// Package jpath owns the small JSON field-path language tracker options use
// ("recenttracks.@attr.totalPages", "date.uts"): dot-separated object keys,
// with an all-digit segment also indexing arrays. It also turns the values
// found there into ids, integers and times.
package jpath

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Time formats accepted by ParseTime.
const (
	FormatAuto    = "auto"    // numbers: unix seconds, or milliseconds above 1e11; strings: numeric or RFC 3339
	FormatUnix    = "unix"    // unix seconds
	FormatUnixMS  = "unix_ms" // unix milliseconds
	FormatRFC3339 = "rfc3339" // RFC 3339 text
)

// ValidFormat reports whether f is one of the time formats ("" counts as auto).
func ValidFormat(f string) bool {
	switch f {
	case "", FormatAuto, FormatUnix, FormatUnixMS, FormatRFC3339:
		return true
	}
	return false
}

func segments(path string) []string {
	if path == "" {
		return nil
	}
	return strings.Split(path, ".")
}

// Raw walks path inside the raw JSON document doc without decoding more
// than it needs. found is false when a key is missing or a value on the way
// is not an object or array; err is set only for malformed JSON.
func Raw(doc json.RawMessage, path string) (v json.RawMessage, found bool, err error) {
	cur := doc
	for _, seg := range segments(path) {
		t := firstByte(cur)
		switch t {
		case '{':
			var m map[string]json.RawMessage
			if err := json.Unmarshal(cur, &m); err != nil {
				return nil, false, err
			}
			next, ok := m[seg]
			if !ok {
				return nil, false, nil
			}
			cur = next
		case '[':
			i, err := strconv.Atoi(seg)
			if err != nil {
				return nil, false, nil
			}
			var a []json.RawMessage
			if err := json.Unmarshal(cur, &a); err != nil {
				return nil, false, err
			}
			if i < 0 || i >= len(a) {
				return nil, false, nil
			}
			cur = a[i]
		default:
			if !json.Valid(cur) {
				return nil, false, fmt.Errorf("jpath: invalid JSON")
			}
			return nil, false, nil
		}
	}
	return cur, true, nil
}

func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// List decodes raw as a list of items: an array as is, a lone object as a
// one-element list (some APIs, Last.fm among them, drop the array when there
// is exactly one item), null as empty.
func List(raw json.RawMessage) ([]json.RawMessage, error) {
	switch firstByte(raw) {
	case '[':
		var a []json.RawMessage
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, err
		}
		return a, nil
	case '{':
		return []json.RawMessage{raw}, nil
	case 'n', 0:
		return nil, nil
	}
	return nil, fmt.Errorf("jpath: want an array or an object, got %.20s", raw)
}

// Decode decodes raw into a generic value with numbers kept as json.Number.
func Decode(raw json.RawMessage) (any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// Get walks path inside a value produced by Decode.
func Get(v any, path string) (any, bool) {
	for _, seg := range segments(path) {
		switch x := v.(type) {
		case map[string]any:
			next, ok := x[seg]
			if !ok {
				return nil, false
			}
			v = next
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// String renders a scalar as text: strings as they are, numbers in their
// JSON spelling, booleans as true/false. ok is false for null, objects and
// arrays.
func String(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// Int reads an integer from a JSON number or a numeric string.
func Int(v any) (int64, bool) {
	s, ok := String(v)
	if !ok {
		return 0, false
	}
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f > math.MaxInt64 || f < math.MinInt64 {
		return 0, false
	}
	return int64(f), true
}

// ParseTime reads a timestamp in the given format (see the Format constants).
func ParseTime(v any, format string) (time.Time, error) {
	s, ok := String(v)
	if !ok {
		return time.Time{}, fmt.Errorf("not a timestamp: %T", v)
	}
	s = strings.TrimSpace(s)
	switch format {
	case FormatUnix:
		n, ok := Int(s)
		if !ok {
			return time.Time{}, fmt.Errorf("not unix seconds: %q", s)
		}
		return time.Unix(n, 0).UTC(), nil
	case FormatUnixMS:
		n, ok := Int(s)
		if !ok {
			return time.Time{}, fmt.Errorf("not unix milliseconds: %q", s)
		}
		return time.UnixMilli(n).UTC(), nil
	case FormatRFC3339:
		return time.Parse(time.RFC3339Nano, s)
	}
	if n, ok := Int(s); ok {
		if n > 1e11 || n < -1e11 {
			return time.UnixMilli(n).UTC(), nil
		}
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("not unix seconds, unix milliseconds or RFC 3339: %q", s)
	}
	return t, nil
}
