package config

import (
	"iter"

	"gopkg.in/yaml.v3"
)

// entries yields the pairs of mapping n to decode, with each key pushed
// on the key path while it is yielded. A key the mapping sets twice
// itself is reported and its repeat skipped; a merged key may be
// overridden. Lazily, so errors keep the order they are found in.
func (d *decoder) entries(n *yaml.Node) iter.Seq[pair] {
	return func(yield func(pair) bool) {
		if plainMapping(n) {
			// The common case: scalar keys, no merge key. Walked in place.
			var seen map[string]int // only for large mappings; small ones are scanned
			if len(n.Content) > 32 {
				seen = make(map[string]int, len(n.Content)/2)
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				first := 0
				if seen != nil {
					first = seen[k.Value]
				} else {
					for j := 0; j < i; j += 2 {
						if n.Content[j].Value == k.Value {
							first = n.Content[j].Line
							break
						}
					}
				}
				if !d.yieldEntry(yield, pair{key: k, value: n.Content[i+1]}, first) {
					return
				}
				if seen != nil && first == 0 {
					seen[k.Value] = k.Line
				}
			}
			return
		}
		ps := d.pairs(n)
		var seen map[string]int // only for large mappings; small ones are scanned
		if len(ps) > 16 {
			seen = make(map[string]int, len(ps))
		}
		for i, p := range ps {
			first := 0
			if !p.merged {
				first = firstSet(ps[:i], seen, p.key.Value)
				if seen != nil && first == 0 {
					seen[p.key.Value] = p.key.Line
				}
			}
			if !d.yieldEntry(yield, p, first) {
				return
			}
		}
	}
}

// yieldEntry pushes p's key on the key path and yields p, or reports it
// as a duplicate of the key first set at line first (when first > 0).
func (d *decoder) yieldEntry(yield func(pair) bool, p pair, first int) bool {
	mark := d.push(p.key.Value)
	defer d.pop(mark)
	if first > 0 {
		d.fail(p.key.Line, d.key(), "", wrapf(ErrDuplicate, "duplicate key, first set at line %d", first))
		return true
	}
	return yield(p)
}

// plainMapping reports whether every key of mapping n is a plain scalar
// (not an alias, not a merge key), so that its pairs are its content.
func plainMapping(n *yaml.Node) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
			return false
		}
	}
	return true
}

// firstSet is the line where the mapping's own keys before set name, or 0.
func firstSet(before []pair, seen map[string]int, name string) int {
	if seen != nil {
		return seen[name]
	}
	for _, q := range before {
		if !q.merged && q.key.Value == name {
			return q.key.Line
		}
	}
	return 0
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
	own := make([]pair, 0, len(n.Content)/2)
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
	}
	if len(merges) == 0 {
		return own // no merge keys, nothing to look up
	}
	var merged []pair
	set := make(map[string]bool, len(own))
	for _, p := range own {
		set[p.key.Value] = true
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
