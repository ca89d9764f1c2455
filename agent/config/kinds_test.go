package config

import (
	"encoding"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/container"
	"github.com/rouse-dev/rouse/trackers/exec"
	"github.com/rouse-dev/rouse/trackers/http"
	"github.com/rouse-dev/rouse/trackers/network"
	"github.com/rouse-dev/rouse/trackers/roon"
	"github.com/rouse-dev/rouse/trackers/websocket"
)

// realKinds are the kinds rouse ships (cmd/rouse's builtinKinds).
var realKinds = trackers.NewKinds(container.Kind, exec.Kind, http.Kind, http.LastfmKind, network.Kind, roon.Kind, websocket.Kind)

// misspell changes one letter in the middle of name: an edit closest to
// name, so that "did you mean" must find it.
func misspell(name string) string {
	i := len(name) / 2
	c := byte('q')
	if name[i] == 'q' {
		c = 'x'
	}
	return name[:i] + string(c) + name[i+1:]
}

// longestKey is the longest YAML key of struct type t, or "".
func longestKey(t reflect.Type) string {
	best := ""
	for _, f := range fieldsOf(t) {
		if len(f.name) > len(best) {
			best = f.name
		}
	}
	return best
}

// TestEveryKindRefusesAMisspeltNestedKey feeds each kind a misspelt key
// inside each of its nested option mappings (or at its top level when it
// has none) and expects the unknown-key error with "did you mean".
func TestEveryKindRefusesAMisspeltNestedKey(t *testing.T) {
	for _, name := range realKinds.Names() {
		t.Run(name, func(t *testing.T) {
			k, _ := realKinds.Lookup(name)
			typ := reflect.TypeOf(k.NewOptions()).Elem()
			tried := 0
			for _, f := range fieldsOf(typ) {
				ft := typ.FieldByIndex(f.index).Type
				for ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() != reflect.Struct || ft == reflect.TypeFor[time.Time]() {
					continue
				}
				sub := longestKey(ft)
				if len(sub) < 4 {
					continue // too short for a suggestion to be safe
				}
				tried++
				bad := misspell(sub)
				src := "trackers:\n  - name: t\n    kind: " + name + "\n    " + f.name + ":\n      " + bad + ": x\n"
				want := `rouse.yaml:5: trackers[0].` + f.name + `.` + bad + `: unknown key; did you mean "` + sub + `"?`
				if _, err := Parse("rouse.yaml", []byte(src), realKinds); err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("%s:\n got %v\nwant %s", f.name, err, want)
				}
			}
			if tried == 0 {
				top := longestKey(typ)
				bad := misspell(top)
				src := "trackers:\n  - name: t\n    kind: " + name + "\n    " + bad + ": x\n"
				want := `rouse.yaml:4: trackers[0].` + bad + `: unknown key; did you mean "` + top + `"?`
				if _, err := Parse("rouse.yaml", []byte(src), realKinds); err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("got %v\nwant %s", err, want)
				}
			}
		})
	}
	t.Run("HTTPPagingTheIssueNamed", func(t *testing.T) {
		src := "trackers:\n  - name: t\n    kind: http\n    url: http://x/\n    paging: {total_pagez: total, ordr: newest_first}\n"
		_, err := Parse("rouse.yaml", []byte(src), realKinds)
		for _, want := range []string{
			`rouse.yaml:5: trackers[0].paging.total_pagez: unknown key; did you mean "total_pages"?`,
			`rouse.yaml:5: trackers[0].paging.ordr: unknown key; did you mean "order"?`,
		} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("got %v\nwant %s", err, want)
			}
		}
		if _, err := Parse("rouse.yaml", []byte("trackers:\n  - name: t\n    kind: http\n    url: http://x/\n    items: {time: t}\n    paging: none\n"), realKinds); err != nil {
			t.Errorf("paging: none: %v", err)
		}
	})
}

// TestKindOptionsUseOnlyDecodableShapes keeps every kind's options within
// what decode.go reads field by field: no yaml.Unmarshaler or
// TextUnmarshaler (they would escape the unknown-key check), no interface
// fields, string map keys.
func TestKindOptionsUseOnlyDecodableShapes(t *testing.T) {
	bad := []reflect.Type{reflect.TypeFor[yaml.Unmarshaler](), reflect.TypeFor[encoding.TextUnmarshaler]()}
	for _, name := range realKinds.Names() {
		k, _ := realKinds.Lookup(name)
		seen := map[reflect.Type]bool{}
		var walk func(t2 reflect.Type, path string)
		walk = func(t2 reflect.Type, path string) {
			if seen[t2] {
				return
			}
			seen[t2] = true
			for _, b := range bad {
				if t2.Implements(b) || reflect.PointerTo(t2).Implements(b) {
					t.Errorf("%s: %s (%s) implements %s; use trackers.ScalarShorthand", name, path, t2, b)
				}
			}
			switch t2.Kind() {
			case reflect.Interface:
				t.Errorf("%s: %s is an interface", name, path)
			case reflect.Pointer, reflect.Slice:
				walk(t2.Elem(), path)
			case reflect.Map:
				if t2.Key().Kind() != reflect.String {
					t.Errorf("%s: %s has %s keys", name, path, t2.Key())
				}
				walk(t2.Elem(), path)
			case reflect.Struct:
				for _, f := range fieldsOf(t2) {
					walk(t2.FieldByIndex(f.index).Type, path+"."+f.name)
				}
			}
		}
		walk(reflect.TypeOf(k.NewOptions()).Elem(), name)
	}
}
