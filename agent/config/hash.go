package config

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// hash is a stable digest of a node's content: aliases and merge keys
// resolved, mapping keys sorted, comments and layout ignored. The
// canonical form is written into one buffer reused for every entry;
// checkExpansion has bounded what it can visit.
func (d *decoder) hash(n *yaml.Node) string {
	d.buf = d.canon(d.buf[:0], n, 0)
	sum := sha256.Sum256(d.buf)
	return hex.EncodeToString(sum[:16])
}

func (d *decoder) canon(b []byte, n *yaml.Node, depth int) []byte {
	n = d.resolve(n)
	if n == nil || depth > 200 {
		return append(b, '?')
	}
	switch n.Kind {
	case yaml.ScalarNode:
		b = append(b, 's')
		b = append(b, n.ShortTag()...)
		b = appendLen(b, n.Value)
		return append(b, ';')
	case yaml.SequenceNode:
		b = append(b, '[')
		for _, c := range n.Content {
			b = d.canon(b, c, depth+1)
		}
		return append(b, ']')
	case yaml.MappingNode:
		var small [16]pair
		ps := small[:0]
		if plainMapping(n) {
			for i := 0; i+1 < len(n.Content); i += 2 {
				ps = append(ps, pair{key: n.Content[i], value: n.Content[i+1]})
			}
		} else {
			ps = d.pairs(n)
		}
		sortPairs(ps)
		b = append(b, '{')
		for _, p := range ps {
			b = append(b, 'k')
			b = appendLen(b, p.key.Value)
			b = append(b, '=')
			b = d.canon(b, p.value, depth+1)
		}
		return append(b, '}')
	}
	return append(b, '?')
}

// sortPairs sorts ps by key, stably (an insertion sort: a mapping in a
// config has a handful of keys).
func sortPairs(ps []pair) {
	if len(ps) > 32 {
		slices.SortStableFunc(ps, func(a, b pair) int { return strings.Compare(a.key.Value, b.key.Value) })
		return
	}
	for i := 1; i < len(ps); i++ {
		p := ps[i]
		j := i
		for ; j > 0 && p.key.Value < ps[j-1].key.Value; j-- {
			ps[j] = ps[j-1]
		}
		if j != i {
			ps[j] = p
		}
	}
}

// appendLen appends s prefixed by its length, so that no two sequences of
// strings write the same bytes.
func appendLen(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}
