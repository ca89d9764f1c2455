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

// decoder walks a yaml.Node tree into Go values, recording errors, the
// line of every key path and the text of every scalar.
type decoder struct {
	root  *yaml.Node // the document, to place errors found after the walk
	file  string
	kinds trackers.Kinds
	errs  Errors
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
	durationType    = reflect.TypeFor[time.Duration]()
	nodeDecoderType = reflect.TypeFor[nodeDecoder]()
	shorthandType   = reflect.TypeFor[trackers.ScalarShorthand]()
)

// decodeValue decodes n into v (settable). A null node leaves v as it is.
func (d *decoder) decodeValue(n *yaml.Node, v reflect.Value, key string) {
	n = d.resolve(n)
	if n == nil {
		return
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
	if n.Kind == yaml.ScalarNode && v.CanAddr() && v.Addr().Type().Implements(shorthandType) {
		if err := v.Addr().Interface().(trackers.ScalarShorthand).SetScalar(n.Value); err != nil {
			d.fail(n.Line, key, n.Value, wrapf(ErrInvalidValue, "%s", err))
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
		// A mapping decoded with errors inside (health: {retires: 2},
		// on_demand: {upstrem: x, mode: htp}) is kept all the same, so
		// that validation reports its other problems in the same run;
		// the values that failed stay at their defaults and explains()
		// drops what they would cause.
		if len(d.errs) == before || (n.Kind == yaml.MappingNode && nv.Elem().Kind() == reflect.Struct) {
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
	default:
		// No schema type lands here; a new one must be handled above.
		d.fail(n.Line, key, scalar(n), wrapf(ErrWrongType, "cannot be decoded into %s", v.Type()))
	}
}

// scalar is the text of a scalar node, "" for collections.
func scalar(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return ""
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
		ik := key + "[" + strconv.Itoa(i) + "]"
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
		d.fail(n.Line, key, "", wrapf(ErrWrongType, "cannot be decoded into %s", t))
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

// structField is one decodable field of a struct type.
type structField struct {
	name  string
	index []int
}

// structInfo is what decodeStruct needs of a struct type, computed once
// per type.
type structInfo struct {
	byName map[string][]int
	known  string // "expected one of: ..." for unknown keys
	names  []string
}

var structInfos sync.Map // reflect.Type → *structInfo

func infoOf(t reflect.Type) *structInfo {
	if si, ok := structInfos.Load(t); ok {
		return si.(*structInfo)
	}
	fields := fieldsOf(t)
	si := &structInfo{byName: make(map[string][]int, len(fields))}
	for _, f := range fields {
		si.byName[f.name] = f.index
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
	si := infoOf(v.Type())
	for e := range d.entries(n, key) {
		name := e.key.Value
		if idx, ok := si.byName[name]; ok {
			d.decodeValue(e.value, v.FieldByIndex(idx), e.full)
			continue
		}
		if rest != nil && rest(e.key, e.value) {
			continue
		}
		hint := si.known
		if guess := closest(name, si.names); guess != "" {
			hint = fmt.Sprintf("did you mean %q? %s", guess, hint)
		}
		d.failHint(e.key.Line, e.full, "", ErrUnknownKey, hint)
	}
}

// expandHome replaces a leading "~" or "~/" in *p with the home directory.
func (d *decoder) expandHome(p *string, key string) {
	s, err := home.Expand(*p)
	if err != nil {
		line, _ := lookup(d.root, key)
		d.fail(line, key, *p, wrapf(ErrInvalidValue, "cannot expand ~: %v", err))
		return
	}
	*p = s
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
	// `deadline: auto` is not a duration: take it out before decoding.
	fields := n
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k, v := n.Content[i], n.Content[i+1]; k.Value == "deadline" && v.Kind == yaml.ScalarNode && v.Value == "auto" {
			t.DeadlineAuto = true
			cp := *n
			cp.Content = append(slices.Clone(n.Content[:i]), n.Content[i+2:]...)
			fields = &cp
			break
		}
	}
	d.decodeStruct(fields, reflect.ValueOf(t).Elem(), key, func(k, v *yaml.Node) bool {
		rest = append(rest, k, v)
		return true
	})
	// on_demand is the entry point in front of the component, not the
	// component: editing it must not restart the component.
	hashed := n
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "on_demand" {
			cp := *n
			cp.Content = append(slices.Clone(n.Content[:i]), n.Content[i+2:]...)
			hashed = &cp
			break
		}
	}
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
		d.decodeStruct(opts, reflect.ValueOf(&empty).Elem(), key, nil)
		d.hintTrackerKeys(before, key, t.Kind, nil)
		return
	}
	o := kind.NewOptions()
	ov := reflect.ValueOf(o)
	if !ov.IsValid() || ov.Kind() != reflect.Pointer || ov.IsNil() {
		d.fail(n.Line, join(key, "kind"), t.Kind, fmt.Errorf("kind %q is broken: NewOptions must return a non-nil pointer", t.Kind))
		return
	}
	d.decodeValue(opts, ov.Elem(), key)
	var optNames []string
	if ov.Elem().Kind() == reflect.Struct {
		optNames = infoOf(ov.Elem().Type()).names
	}
	d.hintTrackerKeys(before, key, t.Kind, optNames)
	t.Options = o
}

// hintTrackerKeys rewrites the hint of the unknown-key errors that the
// kind's options reported (from d.errs[from:]) for keys directly in the
// tracker entry at key: such a key is neither the kind's nor one every
// tracker has, so the hint names both lists and guesses from both
// (`helth` → "health", not only the kind's keys).
func (d *decoder) hintTrackerKeys(from int, key, kind string, optNames []string) {
	if len(d.errs) == from {
		return // no error to hint at (the lists are built only when one is)
	}
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
func (o *OnDemand) decodeNode(d *decoder, n *yaml.Node, key string) {
	if o.Mode == "" {
		o.Mode = OnDemandHTTP
	}
	if o.OnFailure == "" {
		o.OnFailure = OnFailureRollback
	}
	d.decodeStruct(n, reflect.ValueOf(o).Elem(), key, nil)
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

// decodeNode reads a tracker's health check over its defaults.
func (h *Health) decodeNode(d *decoder, n *yaml.Node, key string) {
	*h = DefaultHealth()
	d.decodeStruct(n, reflect.ValueOf(h).Elem(), key, nil)
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
