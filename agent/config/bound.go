package config

import (
	"bytes"
	"fmt"

	"gopkg.in/yaml.v3"
)

// Limits on what one config file may cost to read. yaml.v3 builds a node
// of about 200 bytes for every value it reads and resolves aliases lazily,
// so the bounds are checked in three places, each before the work it
// bounds: the file's size before it is parsed, the number of YAML
// indicators (which bounds the nodes yaml.v3 will build) before it is
// parsed, and what aliases and merge keys expand to (in bytes and in
// values) after it is parsed but before it is decoded or hashed. Together
// they keep any config — a live edit or `rouse config check` — to a few
// tens of MB and well under a second.
const (
	// MaxFileBytes is the largest config file read (a 1,000-entry config
	// is about 200 KB).
	MaxFileBytes = 1 << 20
	// maxIndicators bounds the YAML indicators and line breaks of a file;
	// yaml.v3 makes at most about two nodes per indicator.
	maxIndicators = 1 << 16
	// MaxExpandedBytes bounds the scalar bytes the document holds once its
	// aliases and merge keys are expanded.
	MaxExpandedBytes = 16 << 20
	// maxExpandedNodes bounds the values the document holds once its
	// aliases and merge keys are expanded.
	maxExpandedNodes = 1 << 17
)

// checkSize refuses a file over MaxFileBytes or with more indicators than
// maxIndicators, with one error naming the line where the limit was
// passed.
func checkSize(file string, data []byte) *FieldError {
	if len(data) > MaxFileBytes {
		return tooLarge(file, data, int64(len(data)))
	}
	n, line := 0, 1
	for _, c := range data {
		if !isIndicator[c] {
			continue
		}
		n++
		if c == '\n' {
			line++
		}
		if n > maxIndicators {
			return &FieldError{File: file, Line: line, Err: wrapf(ErrTooLarge,
				"the file holds more than %d YAML values and lines; nothing was read", maxIndicators)}
		}
	}
	return nil
}

// isIndicator marks the bytes checkSize counts: line breaks and YAML
// indicators (0x85…: the tails of NEL, LS, PS).
var isIndicator = [256]bool{'\n': true, '\r': true, ',': true, ':': true, '-': true, '?': true, '[': true, '{': true,
	'*': true, '&': true, '!': true, '|': true, '>': true, 0x85: true, 0xa8: true, 0xa9: true}

// tooLarge is the one error for a file over MaxFileBytes, at the line
// where it passes the limit.
func tooLarge(file string, data []byte, size int64) *FieldError {
	line := 1 + bytes.Count(data[:min(len(data), MaxFileBytes)], []byte{'\n'})
	return &FieldError{File: file, Line: line, Err: wrapf(ErrTooLarge, "the file is larger than %s (%d bytes); nothing was read",
		mib(MaxFileBytes), size)}
}

// expansion measures what a parsed document holds once aliases and merge
// keys are expanded, memoized per node so that it costs one walk of the
// document as written.
type expansion struct {
	file   string
	memo   map[*yaml.Node]cost
	bytes  int
	nodes  int
	failed *FieldError
}

type cost struct{ bytes, nodes int }

// saturate keeps costs from overflowing: anything over the limits is the
// same.
func (c cost) add(o cost) cost {
	return cost{min(c.bytes+o.bytes, MaxExpandedBytes+1), min(c.nodes+o.nodes, maxExpandedNodes+1)}
}

// checkExpansion refuses a document whose aliases and merge keys expand to
// more than MaxExpandedBytes of scalars or maxExpandedNodes values, naming
// the line of the alias that passed the limit.
func checkExpansion(file string, root *yaml.Node) *FieldError {
	e := &expansion{file: file, memo: map[*yaml.Node]cost{}}
	e.walk(root, 0)
	return e.failed
}

// walk adds n's own content to the running total, and each alias's
// expanded content as it is met, stopping at the first alias that passes a
// limit.
func (e *expansion) walk(n *yaml.Node, depth int) {
	if n == nil || e.failed != nil {
		return
	}
	if n.Kind == yaml.AliasNode {
		c := e.size(n.Alias, 0)
		e.bytes, e.nodes = e.bytes+c.bytes, e.nodes+c.nodes
		e.over(n.Line)
		return
	}
	e.bytes += len(n.Value)
	e.nodes++
	e.over(n.Line)
	for _, c := range n.Content {
		e.walk(c, depth+1)
	}
}

func (e *expansion) over(line int) {
	if e.failed != nil {
		return
	}
	switch {
	case e.bytes > MaxExpandedBytes:
		e.failed = &FieldError{File: e.file, Line: line, Err: wrapf(ErrTooLarge, "aliases expand to more than %s", mib(MaxExpandedBytes))}
	case e.nodes > maxExpandedNodes:
		e.failed = &FieldError{File: e.file, Line: line, Err: wrapf(ErrTooLarge, "aliases expand to more than %d values", maxExpandedNodes)}
	}
}

// size is the expanded cost of n, memoized.
func (e *expansion) size(n *yaml.Node, depth int) cost {
	if n == nil {
		return cost{}
	}
	if c, ok := e.memo[n]; ok {
		return c
	}
	if depth > 10000 { // yaml.v3 refuses deeper documents; never recurse without bound
		return cost{MaxExpandedBytes + 1, maxExpandedNodes + 1}
	}
	var c cost
	if n.Kind == yaml.AliasNode {
		c = e.size(n.Alias, depth+1)
	} else {
		c = cost{len(n.Value), 1}
		for _, ch := range n.Content {
			c = c.add(e.size(ch, depth+1))
		}
	}
	e.memo[n] = c
	return c
}

func mib(n int) string { return fmt.Sprintf("%d MiB", n>>20) }
