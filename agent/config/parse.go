package config

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rouse-dev/rouse/trackers"
)

// DefaultYAML is the embedded default configuration: what `rouse run` uses
// when there is no config file, and the commented example shipped as the
// system-wide config file.
//
//go:embed default.yaml
var DefaultYAML []byte

// EmbeddedSource is the Source of the config parsed from DefaultYAML.
const EmbeddedSource = "embedded default"

// Embedded parses DefaultYAML. It fails only when a kind it names (network)
// is not registered.
func Embedded() (*Config, error) { return Parse(EmbeddedSource, DefaultYAML) }

// Load checks the file's permissions, reads it and parses it. A file that
// is writable by group or others is refused.
func Load(path string) (*Config, error) {
	c, _, err := load(path)
	return c, err
}

// load is Load that also returns the fingerprint of what it read (mode and
// content), for the watcher.
func load(path string) (*Config, string, error) {
	if err := CheckPermissions(path); err != nil {
		return nil, fingerprintOf(path, nil), err
	}
	data, size, err := readLimited(path)
	if err != nil {
		return nil, fingerprintOf(path, nil), fmt.Errorf("read config: %w", err)
	}
	if size > MaxFileBytes {
		return nil, fingerprintOf(path, nil), Errors{tooLarge(path, data, size)}
	}
	c, err := Parse(path, data)
	return c, fingerprintOf(path, data), err
}

// readLimited reads path, but never more than one byte past MaxFileBytes,
// and says how large the file is.
func readLimited(path string) ([]byte, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, 0, err
	}
	size := int64(len(data))
	if fi, err := f.Stat(); err == nil && fi.Size() > size {
		size = fi.Size()
	}
	return data, size, nil
}

// Parse parses data as a config file named file (used only in messages)
// over Default(), then validates it. On failure it returns a nil config and
// Errors holding every problem found.
func Parse(file string, data []byte) (c *Config, err error) {
	defer func() {
		// yaml.v3 has panicked on malformed input in the past; a config
		// file must never take the agent down.
		if r := recover(); r != nil {
			c, err = nil, Errors{{File: file, Err: wrapf(ErrSyntax, "invalid YAML: %v", r)}}
		}
	}()
	if e := checkSize(file, data); e != nil {
		return nil, Errors{e}
	}
	c = Default()
	c.Source = file
	d := &decoder{file: file, lines: map[string]int{}, values: map[string]string{}}
	root, errs := d.document(data)
	if errs != nil {
		return nil, errs
	}
	if e := checkExpansion(file, root); e != nil {
		return nil, Errors{e}
	}
	if root != nil {
		d.decodeValue(root, reflect.ValueOf(c).Elem(), "")
	}
	c.lines, c.values = d.lines, d.values
	d.expandHome(&c.Data, "data")
	for i := range c.Jobs {
		d.expandHome(&c.Jobs[i].Dir, fmt.Sprintf("jobs[%d].dir", i))
	}
	for i := range c.Trackers {
		t := &c.Trackers[i]
		if t.Required == nil {
			t.Required = ptr(true)
		}
	}
	all := d.errs
	if verr := c.Validate(); verr != nil {
		var ves Errors
		if errors.As(verr, &ves) {
			for _, e := range ves {
				if !d.explains(e.Key) {
					all = append(all, e)
				}
			}
		}
	}
	if len(all) > 0 {
		sortErrors(all)
		return nil, all
	}
	return c, nil
}

func ptr[T any](v T) *T { return &v }

// explains reports whether a decoding error already accounts for a
// validation error at key: one at key itself, a value below key that could
// not be decoded (and was left at its default), or a value around key that
// could not be decoded at all.
func (d *decoder) explains(key string) bool {
	for _, e := range d.errs {
		if e.Key == key {
			return true
		}
		if errors.Is(e, ErrUnknownKey) || errors.Is(e, ErrDuplicate) {
			continue
		}
		if strings.HasPrefix(e.Key, key+".") || strings.HasPrefix(e.Key, key+"[") {
			return true // a value below key was left at its default
		}
		if e.Key != "" && (strings.HasPrefix(key, e.Key+".") || strings.HasPrefix(key, e.Key+"[")) {
			return true // key lies inside a value that could not be decoded
		}
	}
	return false
}

// decoder walks a yaml.Node tree into Go values, recording errors, the
// line of every key path and the text of every scalar.
type decoder struct {
	file   string
	errs   Errors
	lines  map[string]int
	values map[string]string
}

var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

// document parses data into its single document's root node (nil for an
// empty file).
func (d *decoder) document(data []byte) (*yaml.Node, Errors) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, Errors{d.syntaxError(err)}
	}
	var second yaml.Node
	switch err := dec.Decode(&second); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, Errors{d.syntaxError(err)}
	default:
		return nil, Errors{{File: d.file, Line: second.Line, Err: wrapf(ErrSyntax, "only one YAML document is allowed")}}
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil, nil
		}
		return doc.Content[0], nil
	}
	return &doc, nil
}

func (d *decoder) syntaxError(err error) *FieldError {
	msg := err.Error()
	line := 0
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	return &FieldError{File: d.file, Line: line, Err: wrapf(ErrSyntax, "invalid YAML: %s", msg)}
}

func (d *decoder) fail(line int, key, value string, err error) {
	d.failHint(line, key, value, err, "")
}

func (d *decoder) failHint(line int, key, value string, err error, hint string) {
	d.errs = append(d.errs, &FieldError{File: d.file, Line: line, Key: key, Value: value, Err: err, Hint: hint})
}

func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > 100 {
			return nil
		}
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what a node is, for "must be X, not Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a single value"
	}
	return "something else"
}

func join(key, name string) string {
	if key == "" {
		return name
	}
	return key + "." + name
}

// nodeDecoder is implemented by schema types that decode themselves.
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node, key string)
}

var (
	durationType        = reflect.TypeFor[time.Duration]()
	nodeDecoderType     = reflect.TypeFor[nodeDecoder]()
	yamlUnmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decodeValue decodes n into v (settable). A null node leaves v as it is.
func (d *decoder) decodeValue(n *yaml.Node, v reflect.Value, key string) {
	n = d.resolve(n)
	if n == nil {
		return
	}
	if n.Kind == yaml.ScalarNode {
		d.values[key] = n.Value
	}
	if isNull(n) {
		return
	}
	if v.CanAddr() {
		pt := v.Addr().Type()
		if pt.Implements(nodeDecoderType) {
			v.Addr().Interface().(nodeDecoder).decodeNode(d, n, key)
			return
		}
	}
	if v.Type() == durationType {
		d.decodeDuration(n, v, key)
		return
	}
	if v.CanAddr() && (v.Addr().Type().Implements(yamlUnmarshalerType) || v.Addr().Type().Implements(textUnmarshalerType)) {
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.fail(n.Line, key, scalar(n), wrapf(ErrInvalidValue, "%s", cleanYAMLError(err)))
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		nv := reflect.New(v.Type().Elem())
		if !v.IsNil() {
			nv.Elem().Set(v.Elem())
		}
		before := len(d.errs)
		d.decodeValue(n, nv.Elem(), key)
		if len(d.errs) == before {
			v.Set(nv)
		}
	case reflect.Struct:
		d.decodeStruct(n, v, key, nil)
	case reflect.Slice:
		d.decodeSlice(n, v, key)
	case reflect.Map:
		d.decodeMap(n, v, key)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(n.Line, key, "", wrapf(ErrWrongType, "must be a string, not %s", describe(n)))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.fail(n.Line, key, scalar(n), wrapf(ErrWrongType, "must be true or false"))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil || v.OverflowInt(i) {
			d.fail(n.Line, key, scalar(n), wrapf(ErrWrongType, "must be an integer"))
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		var u uint64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&u) != nil || v.OverflowUint(u) {
			d.fail(n.Line, key, scalar(n), wrapf(ErrWrongType, "must be a non-negative integer"))
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		var f float64
		tag := n.ShortTag()
		if n.Kind != yaml.ScalarNode || (tag != "!!float" && tag != "!!int") || n.Decode(&f) != nil || v.OverflowFloat(f) {
			d.fail(n.Line, key, scalar(n), wrapf(ErrWrongType, "must be a number"))
			return
		}
		v.SetFloat(f)
	case reflect.Interface:
		var x any
		if err := n.Decode(&x); err != nil {
			d.fail(n.Line, key, scalar(n), wrapf(ErrInvalidValue, "%s", cleanYAMLError(err)))
			return
		}
		if x != nil {
			xv := reflect.ValueOf(x)
			if !xv.Type().AssignableTo(v.Type()) {
				d.fail(n.Line, key, scalar(n), wrapf(ErrWrongType, "must be %s", v.Type()))
				return
			}
			v.Set(xv)
		}
	default:
		if !v.CanAddr() {
			d.fail(n.Line, key, scalar(n), wrapf(ErrWrongType, "cannot be decoded into %s", v.Type()))
			return
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.fail(n.Line, key, scalar(n), wrapf(ErrInvalidValue, "%s", cleanYAMLError(err)))
		}
	}
}

// scalar is the text of a scalar node, "" for collections.
func scalar(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return ""
}

func cleanYAMLError(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n")
	msg = strings.TrimSpace(msg)
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		msg = msg[len(m[0]):]
	}
	return strings.TrimPrefix(msg, "yaml: ")
}

func (d *decoder) decodeDuration(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n.Line, key, "", wrapf(ErrWrongType, `must be a duration like "10s" or "1m30s", not %s`, describe(n)))
		return
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil {
		d.fail(n.Line, key, n.Value, wrapf(ErrWrongType, `must be a duration like "10s" or "1m30s"`))
		return
	}
	v.SetInt(int64(dur))
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n.Line, key, scalar(n), wrapf(ErrWrongType, "must be a list, not %s", describe(n)))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		ik := fmt.Sprintf("%s[%d]", key, i)
		d.lines[ik] = item.Line
		d.decodeValue(item, s.Index(i), ik)
	}
	v.Set(s)
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n.Line, key, scalar(n), wrapf(ErrWrongType, "must be a mapping, not %s", describe(n)))
		return
	}
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.fail(n.Line, key, "", wrapf(ErrInvalidValue, "%s", cleanYAMLError(err)))
		}
		return
	}
	m := reflect.MakeMapWithSize(t, len(n.Content)/2)
	for e := range d.entries(n, key) {
		ev := reflect.New(t.Elem()).Elem()
		d.decodeValue(e.value, ev, e.full)
		m.SetMapIndex(reflect.ValueOf(e.key.Value).Convert(t.Key()), ev)
	}
	v.Set(m)
}

// entry is a pair to decode, with its full key.
type entry struct {
	pair
	full string
}

// entries yields the pairs of mapping n at key to decode, recording each
// key's line. A key the mapping sets twice itself is reported and its
// repeat skipped; a merged key may be overridden. Lazily, so errors keep
// the order they are found in.
func (d *decoder) entries(n *yaml.Node, key string) iter.Seq[entry] {
	return func(yield func(entry) bool) {
		seen := map[string]int{}
		for _, p := range d.pairs(n) {
			name := p.key.Value
			full := join(key, name)
			if !p.merged {
				if first, dup := seen[name]; dup {
					d.fail(p.key.Line, full, "", wrapf(ErrDuplicate, "duplicate key, first set at line %d", first))
					continue
				}
				seen[name] = p.key.Line
			}
			d.lines[full] = p.key.Line
			if !yield(entry{p, full}) {
				return
			}
		}
	}
}

// pair is one key/value of a mapping after merge keys are expanded.
type pair struct {
	key, value *yaml.Node
	merged     bool // came from a merge key (<<), so it may be overridden
}

// pairs lists a mapping's entries: its own keys, then keys merged in with
// `<<` that it does not set itself. Non-scalar keys are reported and
// skipped.
func (d *decoder) pairs(n *yaml.Node) []pair {
	var own, merged []pair
	set := map[string]bool{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, val)
			continue
		}
		rk := d.resolve(k)
		if rk == nil || rk.Kind != yaml.ScalarNode {
			d.fail(k.Line, "", "", wrapf(ErrWrongType, "a key must be a single value, not %s", describe(k)))
			continue
		}
		own = append(own, pair{key: rk, value: val})
		set[rk.Value] = true
	}
	var add func(m *yaml.Node, depth int)
	add = func(m *yaml.Node, depth int) {
		m = d.resolve(m)
		if m == nil || depth > 10 {
			return
		}
		switch m.Kind {
		case yaml.MappingNode:
			for _, p := range d.pairs(m) {
				if !set[p.key.Value] {
					set[p.key.Value] = true
					merged = append(merged, pair{key: p.key, value: p.value, merged: true})
				}
			}
		case yaml.SequenceNode:
			for _, item := range m.Content {
				add(item, depth+1)
			}
		default:
			d.fail(m.Line, "<<", "", wrapf(ErrWrongType, "a merge key must name a mapping or a list of mappings"))
		}
	}
	for _, m := range merges {
		add(m, 0)
	}
	return append(own, merged...)
}

// structField is one decodable field of a struct type.
type structField struct {
	name  string
	index []int
}

func fieldsOf(t reflect.Type) []structField {
	var out []structField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",inline,") && f.Type.Kind() == reflect.Struct {
			for _, sub := range fieldsOf(f.Type) {
				out = append(out, structField{name: sub.name, index: append([]int{i}, sub.index...)})
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, structField{name: name, index: []int{i}})
	}
	return out
}

// decodeStruct decodes a mapping into struct v. Keys that match no field
// go to rest when it is set and returns true; otherwise they are errors.
func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, key string, rest func(k, val *yaml.Node) bool) {
	if n.Kind != yaml.MappingNode {
		d.fail(n.Line, key, scalar(n), wrapf(ErrWrongType, "must be a mapping, not %s", describe(n)))
		return
	}
	fields := fieldsOf(v.Type())
	byName := make(map[string][]int, len(fields))
	for _, f := range fields {
		byName[f.name] = f.index
	}
	for e := range d.entries(n, key) {
		name := e.key.Value
		if idx, ok := byName[name]; ok {
			d.decodeValue(e.value, v.FieldByIndex(idx), e.full)
			continue
		}
		if rest != nil && rest(e.key, e.value) {
			continue
		}
		known := make([]string, 0, len(fields))
		for _, f := range fields {
			known = append(known, f.name)
		}
		sort.Strings(known)
		hint := "expected one of: " + strings.Join(known, ", ")
		if len(known) == 0 {
			hint = "no keys are allowed here"
		} else if guess := closest(name, known); guess != "" {
			hint = fmt.Sprintf("did you mean %q? %s", guess, hint)
		}
		d.failHint(e.key.Line, e.full, "", ErrUnknownKey, hint)
	}
}

// hash is a stable digest of a node's content: aliases and merge keys
// resolved, mapping keys sorted, comments and layout ignored. It streams
// into the digest; checkExpansion has bounded what it can visit.
func (d *decoder) hash(n *yaml.Node) string {
	h := sha256.New()
	w := bufio.NewWriterSize(h, 512)
	d.canon(w, n, 0)
	_ = w.Flush()
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

func (d *decoder) canon(b *bufio.Writer, n *yaml.Node, depth int) {
	n = d.resolve(n)
	if n == nil || depth > 200 {
		b.WriteString("?")
		return
	}
	switch n.Kind {
	case yaml.ScalarNode:
		b.WriteString("s")
		b.WriteString(n.ShortTag())
		writeLen(b, n.Value)
		b.WriteString(";")
	case yaml.SequenceNode:
		b.WriteString("[")
		for _, c := range n.Content {
			d.canon(b, c, depth+1)
		}
		b.WriteString("]")
	case yaml.MappingNode:
		ps := d.pairs(n)
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].key.Value < ps[j].key.Value })
		b.WriteString("{")
		for _, p := range ps {
			b.WriteString("k")
			writeLen(b, p.key.Value)
			b.WriteString("=")
			d.canon(b, p.value, depth+1)
		}
		b.WriteString("}")
	default:
		b.WriteString("?")
	}
}

// writeLen writes s prefixed by its length, so that no two sequences of
// strings write the same bytes.
func writeLen(b *bufio.Writer, s string) {
	var n [20]byte
	b.Write(strconv.AppendInt(n[:0], int64(len(s)), 10))
	b.WriteByte(':')
	b.WriteString(s)
}

// expandHome replaces a leading "~" or "~/" in *p with the home directory.
func (d *decoder) expandHome(p *string, key string) {
	s := *p
	if s != "~" && !strings.HasPrefix(s, "~/") {
		return
	}
	home, err := os.UserHomeDir()
	if err != nil {
		d.fail(d.lines[key], key, s, wrapf(ErrInvalidValue, "cannot expand ~: %v", err))
		return
	}
	*p = filepath.Join(home, s[1:])
}

// decodeNode reads a dependency: a name, or {name, optional}.
func (dep *Dependency) decodeNode(d *decoder, n *yaml.Node, key string) {
	switch n.Kind {
	case yaml.ScalarNode:
		dep.Name = n.Value
	case yaml.MappingNode:
		d.decodeStruct(n, reflect.ValueOf(dep).Elem(), key, nil)
	default:
		d.fail(n.Line, key, "", wrapf(ErrWrongType, "must be a component name or {name: NAME, optional: true}, not %s", describe(n)))
	}
}

// decodeNode reads a tracker entry: the common keys into t, the rest into
// the options of t's kind.
func (t *Tracker) decodeNode(d *decoder, n *yaml.Node, key string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n.Line, key, scalar(n), wrapf(ErrWrongType, "must be a mapping with name and kind, not %s", describe(n)))
		return
	}
	t.Line = n.Line
	var rest []*yaml.Node
	d.decodeStruct(n, reflect.ValueOf(t).Elem(), key, func(k, v *yaml.Node) bool {
		rest = append(rest, k, v)
		return true
	})
	t.Hash = d.hash(n)
	kind, ok := trackers.Lookup(t.Kind)
	if !ok {
		return // Validate reports the kind; options cannot be checked
	}
	if t.NeedsNetwork == nil {
		t.NeedsNetwork = ptr(kind.NeedsNetwork)
	}
	opts := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column, Content: rest}
	if kind.NewOptions == nil {
		var empty struct{}
		d.decodeStruct(opts, reflect.ValueOf(&empty).Elem(), key, nil)
		return
	}
	o := kind.NewOptions()
	ov := reflect.ValueOf(o)
	if !ov.IsValid() || ov.Kind() != reflect.Pointer || ov.IsNil() {
		d.fail(n.Line, join(key, "kind"), t.Kind, fmt.Errorf("kind %q is broken: NewOptions must return a non-nil pointer", t.Kind))
		return
	}
	d.decodeValue(opts, ov.Elem(), key)
	t.Options = o
}

// decodeNode reads a job entry over the job defaults.
func (j *Job) decodeNode(d *decoder, n *yaml.Node, key string) {
	*j = defaultJob()
	if n.Kind != yaml.MappingNode {
		d.fail(n.Line, key, scalar(n), wrapf(ErrWrongType, "must be a mapping with name and schedule, not %s", describe(n)))
		return
	}
	j.Line = n.Line
	d.decodeStruct(n, reflect.ValueOf(j).Elem(), key, nil)
	j.Hash = d.hash(n)
}

// decodeNode reads a job's http request over its defaults.
func (h *JobHTTP) decodeNode(d *decoder, n *yaml.Node, key string) {
	if h.Method == "" {
		h.Method = DefaultHTTPMethod
	}
	if h.ExpectStatus == 0 {
		h.ExpectStatus = DefaultHTTPStatus
	}
	d.decodeStruct(n, reflect.ValueOf(h).Elem(), key, nil)
}

// closest returns the candidate within edit distance 2 of s, and within a
// third of its length, or "".
func closest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD && d*3 <= len(s) {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, counting an
// adjacent transposition as one edit; it gives up above 3.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	if d := len(a) - len(b); d > 3 || d < -3 {
		return 99
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
