package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rouse-dev/rouse/internal/home"
	"github.com/rouse-dev/rouse/trackers"
)

// decoder walks a yaml.Node tree into Go values, recording errors. The
// key path of the value being decoded ("trackers[3].cursor.from") is kept
// in one buffer that grows and shrinks with the walk; it is turned into a
// string only for an error.
type decoder struct {
	root  *yaml.Node // the document, to place errors found after the walk
	file  string
	kinds trackers.Kinds
	errs  Errors
	path  []byte // the key path being decoded
	buf   []byte // the canonical form being hashed, reused
}

// key is the key path being decoded.
func (d *decoder) key() string { return string(d.path) }

// push appends name (a mapping key) to the key path and returns the length
// to pop back to.
func (d *decoder) push(name string) int {
	n := len(d.path)
	if n > 0 {
		d.path = append(d.path, '.')
	}
	d.path = append(d.path, name...)
	return n
}

// pushIndex appends [i] (a list index) to the key path.
func (d *decoder) pushIndex(i int) int {
	n := len(d.path)
	d.path = append(d.path, '[')
	d.path = strconv.AppendInt(d.path, int64(i), 10)
	d.path = append(d.path, ']')
	return n
}

func (d *decoder) pop(n int) { d.path = d.path[:n] }

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

// nodeDecoder is implemented by schema types that decode themselves; the
// key path of n is d.key().
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node)
}

var (
	durationType    = reflect.TypeFor[time.Duration]()
	nodeDecoderType = reflect.TypeFor[nodeDecoder]()
	shorthandType   = reflect.TypeFor[trackers.ScalarShorthand]()
)

// How decodeValue decodes a type, found once per type.
type valueClass uint8

const (
	byKind      valueClass = iota // by its reflect.Kind
	selfDecoder                   // *T is a nodeDecoder
	duration                      // time.Duration
	shorthand                     // *T is a trackers.ScalarShorthand (for a scalar)
)

var classes sync.Map // reflect.Type → valueClass

func classOf(t reflect.Type) valueClass {
	if c, ok := classes.Load(t); ok {
		return c.(valueClass)
	}
	c := byKind
	switch pt := reflect.PointerTo(t); {
	case pt.Implements(nodeDecoderType):
		c = selfDecoder
	case t == durationType:
		c = duration
	case pt.Implements(shorthandType):
		c = shorthand
	}
	classes.Store(t, c)
	return c
}

// decodeValue decodes n into v (settable). A null node leaves v as it is.
func (d *decoder) decodeValue(n *yaml.Node, v reflect.Value) {
	d.decodeAs(n, v, classOf(v.Type()))
}

// decodeAs is decodeValue for v of class c.
func (d *decoder) decodeAs(n *yaml.Node, v reflect.Value, c valueClass) {
	n = d.resolve(n)
	if n == nil {
		return
	}
	if isNull(n) {
		return
	}
	switch c {
	case selfDecoder:
		if v.CanAddr() {
			v.Addr().Interface().(nodeDecoder).decodeNode(d, n)
			return
		}
	case duration:
		d.decodeDuration(n, v)
		return
	case shorthand:
		if n.Kind == yaml.ScalarNode && v.CanAddr() {
			if err := v.Addr().Interface().(trackers.ScalarShorthand).SetScalar(n.Value); err != nil {
				d.fail(n.Line, d.key(), n.Value, wrapf(ErrInvalidValue, "%s", err))
			}
			return
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		nv := reflect.New(v.Type().Elem())
		if !v.IsNil() {
			nv.Elem().Set(v.Elem())
		}
		before := len(d.errs)
		d.decodeValue(n, nv.Elem())
		// A mapping decoded with errors inside (health: {retires: 2},
		// on_demand: {upstrem: x, mode: htp}) is kept all the same, so
		// that validation reports its other problems in the same run;
		// the values that failed stay at their defaults and explains()
		// drops what they would cause.
		if len(d.errs) == before || (n.Kind == yaml.MappingNode && nv.Elem().Kind() == reflect.Struct) {
			v.Set(nv)
		}
	case reflect.Struct:
		d.decodeStruct(n, v, nil)
	case reflect.Slice:
		d.decodeSlice(n, v)
	case reflect.Map:
		d.decodeMap(n, v)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(n.Line, d.key(), "", wrapf(ErrWrongType, "must be a string, not %s", describe(n)))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		b, ok := boolOf(n)
		if !ok {
			d.fail(n.Line, d.key(), scalar(n), wrapf(ErrWrongType, "must be true or false"))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, ok := intOf(n)
		if !ok || v.OverflowInt(i) {
			d.fail(n.Line, d.key(), scalar(n), wrapf(ErrWrongType, "must be an integer"))
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, ok := uintOf(n)
		if !ok || v.OverflowUint(u) {
			d.fail(n.Line, d.key(), scalar(n), wrapf(ErrWrongType, "must be a non-negative integer"))
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		var f float64
		tag := n.ShortTag()
		if n.Kind != yaml.ScalarNode || (tag != "!!float" && tag != "!!int") || n.Decode(&f) != nil || v.OverflowFloat(f) {
			d.fail(n.Line, d.key(), scalar(n), wrapf(ErrWrongType, "must be a number"))
			return
		}
		v.SetFloat(f)
	default:
		// No schema type lands here; a new one must be handled above.
		d.fail(n.Line, d.key(), scalar(n), wrapf(ErrWrongType, "cannot be decoded into %s", v.Type()))
	}
}

// boolOf reads a !!bool scalar: yaml.v3 resolves only these six spellings
// to !!bool; anything else (an explicit !!bool tag on other text) goes
// through yaml.v3, which refuses it the same way as before.
func boolOf(n *yaml.Node) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		return false, false
	}
	switch n.Value {
	case "true", "True", "TRUE":
		return true, true
	case "false", "False", "FALSE":
		return false, true
	}
	var b bool
	return b, n.Decode(&b) == nil
}

// plainDecimal reports whether s is an integer yaml.v3 reads in base 10
// ("0", or digits not starting with 0, after an optional '-'): for those
// strconv gives what yaml.v3 would; for the rest (0x1f, 0o17, 017, +5,
// 1_000) yaml.v3 decodes it.
func plainDecimal(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" || len(s) > 1 && s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func intOf(n *yaml.Node) (int64, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		return 0, false
	}
	if plainDecimal(n.Value) {
		if i, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
			return i, true
		}
	}
	var i int64
	return i, n.Decode(&i) == nil
}

func uintOf(n *yaml.Node) (uint64, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		return 0, false
	}
	if n.Value != "" && n.Value[0] != '-' && plainDecimal(n.Value) {
		if u, err := strconv.ParseUint(n.Value, 10, 64); err == nil {
			return u, true
		}
	}
	var u uint64
	return u, n.Decode(&u) == nil
}

// scalar is the text of a scalar node, "" for collections.
func scalar(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return ""
}

func (d *decoder) decodeDuration(n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n.Line, d.key(), "", wrapf(ErrWrongType, `must be a duration like "10s" or "1m30s", not %s`, describe(n)))
		return
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil {
		d.fail(n.Line, d.key(), n.Value, wrapf(ErrWrongType, `must be a duration like "10s" or "1m30s"`))
		return
	}
	v.SetInt(int64(dur))
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n.Line, d.key(), scalar(n), wrapf(ErrWrongType, "must be a list, not %s", describe(n)))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		mark := d.pushIndex(i)
		d.decodeValue(item, s.Index(i))
		d.pop(mark)
	}
	v.Set(s)
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.fail(n.Line, d.key(), scalar(n), wrapf(ErrWrongType, "must be a mapping, not %s", describe(n)))
		return
	}
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.fail(n.Line, d.key(), "", wrapf(ErrWrongType, "cannot be decoded into %s", t))
		return
	}
	m := reflect.MakeMapWithSize(t, len(n.Content)/2)
	for e := range d.entries(n) {
		ev := reflect.New(t.Elem()).Elem()
		d.decodeValue(e.value, ev)
		m.SetMapIndex(reflect.ValueOf(e.key.Value).Convert(t.Key()), ev)
	}
	v.Set(m)
}

// structField is one decodable field of a struct type.
type structField struct {
	name  string
	index []int
	class valueClass
}

// structInfo is what decodeStruct needs of a struct type, computed once
// per type.
type structInfo struct {
	byName map[string]structField
	known  string // "expected one of: ..." for unknown keys
	names  []string
}

var structInfos sync.Map // reflect.Type → *structInfo

func infoOf(t reflect.Type) *structInfo {
	if si, ok := structInfos.Load(t); ok {
		return si.(*structInfo)
	}
	fields := fieldsOf(t)
	si := &structInfo{byName: make(map[string]structField, len(fields))}
	for _, f := range fields {
		si.byName[f.name] = f
		si.names = append(si.names, f.name)
	}
	sort.Strings(si.names)
	si.known = "expected one of: " + strings.Join(si.names, ", ")
	if len(si.names) == 0 {
		si.known = "no keys are allowed here"
	}
	structInfos.Store(t, si)
	return si
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
				out = append(out, structField{name: sub.name, index: append([]int{i}, sub.index...), class: sub.class})
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, structField{name: name, index: []int{i}, class: classOf(f.Type)})
	}
	return out
}

// field is v's field at index (FieldByIndex without its allocation for
// the common one-level index).
func field(v reflect.Value, index []int) reflect.Value {
	if len(index) == 1 {
		return v.Field(index[0])
	}
	return v.FieldByIndex(index)
}

// decodeStruct decodes a mapping into struct v. Keys that match no field
// go to rest when it is set and returns true; otherwise they are errors.
func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, rest func(k, val *yaml.Node) bool) {
	if n.Kind != yaml.MappingNode {
		d.fail(n.Line, d.key(), scalar(n), wrapf(ErrWrongType, "must be a mapping, not %s", describe(n)))
		return
	}
	si := infoOf(v.Type())
	for e := range d.entries(n) {
		name := e.key.Value
		if f, ok := si.byName[name]; ok {
			d.decodeAs(e.value, field(v, f.index), f.class)
			continue
		}
		if rest != nil && rest(e.key, e.value) {
			continue
		}
		hint := si.known
		if guess := closest(name, si.names); guess != "" {
			hint = fmt.Sprintf("did you mean %q? %s", guess, hint)
		}
		d.failHint(e.key.Line, d.key(), "", ErrUnknownKey, hint)
	}
}

// expandHome replaces a leading "~" or "~/" in *p with the home directory.
// key names *p: a format taking i, or the key itself when i < 0.
func (d *decoder) expandHome(p *string, key string, i int) {
	s, err := home.Expand(*p)
	if err != nil {
		if i >= 0 {
			key = fmt.Sprintf(key, i)
		}
		line, _ := lookup(d.root, key)
		d.fail(line, key, *p, wrapf(ErrInvalidValue, "cannot expand ~: %v", err))
		return
	}
	*p = s
}

// decodeNode reads a dependency: a name, or {name, optional}.
func (dep *Dependency) decodeNode(d *decoder, n *yaml.Node) {
	switch n.Kind {
	case yaml.ScalarNode:
		dep.Name = n.Value
	case yaml.MappingNode:
		d.decodeStruct(n, reflect.ValueOf(dep).Elem(), nil)
	default:
		d.fail(n.Line, d.key(), "", wrapf(ErrWrongType, "must be a component name or {name: NAME, optional: true}, not %s", describe(n)))
	}
}

// without is mapping n without its entry at i (a key/value pair).
func without(n *yaml.Node, i int) *yaml.Node {
	cp := *n
	cp.Content = append(slices.Clone(n.Content[:i]), n.Content[i+2:]...)
	return &cp
}

// decodeNode reads a tracker entry: the common keys into t, the rest into
// the options of t's kind.
func (t *Tracker) decodeNode(d *decoder, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		d.fail(n.Line, d.key(), scalar(n), wrapf(ErrWrongType, "must be a mapping with name and kind, not %s", describe(n)))
		return
	}
	t.Line = n.Line
	// `deadline: auto` is not a duration: take it out before decoding.
	// on_demand is the entry point in front of the component, not the
	// component: editing it must not restart the component, so it is left
	// out of the hash.
	fields, hashed := n, n
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch k, v := n.Content[i], n.Content[i+1]; {
		case k.Value == "deadline" && v.Kind == yaml.ScalarNode && v.Value == "auto" && fields == n:
			t.DeadlineAuto = true
			fields = without(n, i)
		case k.Value == "on_demand" && hashed == n:
			hashed = without(n, i)
		}
	}
	rest := make([]*yaml.Node, 0, len(n.Content))
	d.decodeStruct(fields, reflect.ValueOf(t).Elem(), func(k, v *yaml.Node) bool {
		rest = append(rest, k, v)
		return true
	})
	t.Hash = d.hash(hashed)
	kind, ok := d.kinds.Lookup(t.Kind)
	if !ok {
		return // Validate reports the kind; options cannot be checked
	}
	if t.NeedsNetwork == nil {
		t.NeedsNetwork = ptr(kind.NeedsNetwork)
	}
	opts := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column, Content: rest}
	before := len(d.errs)
	if kind.NewOptions == nil {
		var empty struct{}
		d.decodeStruct(opts, reflect.ValueOf(&empty).Elem(), nil)
		d.hintTrackerKeys(before, t.Kind, nil)
		return
	}
	o := kind.NewOptions()
	ov := reflect.ValueOf(o)
	if !ov.IsValid() || ov.Kind() != reflect.Pointer || ov.IsNil() {
		d.fail(n.Line, join(d.key(), "kind"), t.Kind, fmt.Errorf("kind %q is broken: NewOptions must return a non-nil pointer", t.Kind))
		return
	}
	d.decodeValue(opts, ov.Elem())
	var optNames []string
	if ov.Elem().Kind() == reflect.Struct {
		optNames = infoOf(ov.Elem().Type()).names
	}
	d.hintTrackerKeys(before, t.Kind, optNames)
	t.Options = o
}

// hintTrackerKeys rewrites the hint of the unknown-key errors that the
// kind's options reported (from d.errs[from:]) for keys directly in the
// tracker entry being decoded: such a key is neither the kind's nor one
// every tracker has, so the hint names both lists and guesses from both
// (`helth` → "health", not only the kind's keys).
func (d *decoder) hintTrackerKeys(from int, kind string, optNames []string) {
	if len(d.errs) == from {
		return // no error to hint at (the lists are built only when one is)
	}
	key := d.key()
	common := infoOf(reflect.TypeFor[Tracker]()).names
	known := "expected one of: " + strings.Join(optNames, ", ") + ", or for every tracker: " + strings.Join(common, ", ")
	if len(optNames) == 0 {
		known = "kind " + kind + " has no keys of its own; expected one of: " + strings.Join(common, ", ")
	}
	all := append(slices.Clone(optNames), common...)
	for _, e := range d.errs[from:] {
		name, ok := strings.CutPrefix(e.Key, key+".")
		if !ok || !errors.Is(e, ErrUnknownKey) || strings.ContainsAny(name, ".[") {
			continue
		}
		e.Hint = known
		if guess := closest(name, all); guess != "" {
			e.Hint = fmt.Sprintf("did you mean %q? %s", guess, known)
		}
	}
}

// decodeNode reads an on_demand key over its defaults.
func (o *OnDemand) decodeNode(d *decoder, n *yaml.Node) {
	if o.Mode == "" {
		o.Mode = OnDemandHTTP
	}
	if o.OnFailure == "" {
		o.OnFailure = OnFailureRollback
	}
	d.decodeStruct(n, reflect.ValueOf(o).Elem(), nil)
}

// decodeNode reads a job entry over the job defaults.
func (j *Job) decodeNode(d *decoder, n *yaml.Node) {
	*j = defaultJob()
	if n.Kind != yaml.MappingNode {
		d.fail(n.Line, d.key(), scalar(n), wrapf(ErrWrongType, "must be a mapping with name and schedule, not %s", describe(n)))
		return
	}
	j.Line = n.Line
	d.decodeStruct(n, reflect.ValueOf(j).Elem(), nil)
	j.Hash = d.hash(n)
}

// decodeNode reads a tracker's health check over its defaults.
func (h *Health) decodeNode(d *decoder, n *yaml.Node) {
	*h = DefaultHealth()
	d.decodeStruct(n, reflect.ValueOf(h).Elem(), nil)
}

// decodeNode reads a job's http request over its defaults.
func (h *JobHTTP) decodeNode(d *decoder, n *yaml.Node) {
	if h.Method == "" {
		h.Method = DefaultHTTPMethod
	}
	if h.ExpectStatus == 0 {
		h.ExpectStatus = DefaultHTTPStatus
	}
	d.decodeStruct(n, reflect.ValueOf(h).Elem(), nil)
}
