package config

// Why this package decodes YAML by hand: yaml.v3's Node.Decode does not
// honour KnownFields (only a Decoder does, and only for the whole
// document), and a config must report every problem at once — unknown keys
// at any depth with a "did you mean", wrong types, duplicates — each with
// its file and line, while a Decoder stops at the first error and loses
// lines for values it decoded. So the document is parsed once into a
// yaml.Node tree and walked here:
//
//   parse.go    Load and Parse: read (bounded, see bound.go), parse, decode, validate
//   bound.go    the limits on size and on what aliases and merge keys expand to
//   decode.go   the walk from nodes into the schema's Go values
//   merge.go    a mapping's entries with merge keys (<<) expanded
//   hash.go     the change hash of an entry
//   suggest.go  "did you mean" for unknown keys

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"

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

// Embedded parses DefaultYAML against kinds. It fails only when a kind it
// names (network) is not among them.
func Embedded(kinds trackers.Kinds) (*Config, error) {
	return Parse(EmbeddedSource, DefaultYAML, kinds)
}

// Load checks the file's permissions, reads it and parses it. A file that
// is writable by group or others is refused.
func Load(path string, kinds trackers.Kinds) (*Config, error) {
	c, _, err := load(path, kinds)
	return c, err
}

// load is Load that also returns the fingerprint of what it read (mode and
// content), for the watcher.
func load(path string, kinds trackers.Kinds) (*Config, string, error) {
	if err := CheckPermissions(path); err != nil {
		return nil, fingerprintOf(path), err
	}
	data, fi, err := readLimited(path)
	if err != nil {
		return nil, fingerprintOf(path), fmt.Errorf("read config: %w", err)
	}
	// The fingerprint comes from the same read and the same stat as the
	// outcome: a file caught in the middle of a write is told apart from
	// the finished one, whose own event then reloads it.
	fp := fingerprint(fi, data)
	if fi.Size() > MaxFileBytes {
		return nil, fp, Errors{tooLarge(path, data, fi.Size())}
	}
	c, err := Parse(path, data, kinds)
	if c != nil {
		c.fingerprint = fp
	}
	return c, fp, err
}

// readLimited reads path, but never more than one byte past MaxFileBytes,
// and returns the stat of the open file taken after the read, whose size
// is at least what was read.
func readLimited(path string) ([]byte, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if fi.Size() < int64(len(data)) {
		fi = sizedInfo{fi, int64(len(data))}
	}
	return data, fi, nil
}

// sizedInfo is a FileInfo whose size is corrected to what was read (a
// file that grew between the read and the stat cannot be smaller).
type sizedInfo struct {
	fs.FileInfo
	size int64
}

func (s sizedInfo) Size() int64 { return s.size }

// Parse parses data as a config file named file (used only in messages)
// over Default(), then validates it. kinds are the tracker kinds a tracker
// entry may name; each decodes its own options. On failure it returns a nil
// config and Errors holding every problem found.
func Parse(file string, data []byte, kinds trackers.Kinds) (c *Config, err error) {
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
	d := &decoder{file: file, kinds: kinds}
	root, errs := d.document(data)
	if errs != nil {
		return nil, errs
	}
	if e := checkExpansion(file, root); e != nil {
		return nil, Errors{e}
	}
	d.root = root
	if root != nil {
		d.decodeValue(root, reflect.ValueOf(c).Elem())
	}
	c.root = root
	parsed := c
	defer func() { parsed.root = nil }() // lines are looked up only while validating
	d.expandHome(&c.Data, "data", -1)
	for i := range c.Jobs {
		d.expandHome(&c.Jobs[i].Dir, "jobs[%d].dir", i)
	}
	for i := range c.Trackers {
		t := &c.Trackers[i]
		if t.Required == nil {
			t.Required = ptr(true)
		}
	}
	all := d.errs
	if verr := c.Validate(kinds); verr != nil {
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

// lineRE is compiled on first use: only an invalid file needs it.
var lineRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(?:yaml: )?line (\d+): `) })

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
	if m := lineRE().FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	return &FieldError{File: d.file, Line: line, Err: wrapf(ErrSyntax, "invalid YAML: %s", msg)}
}
