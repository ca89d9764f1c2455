package config

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

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
		slices.SortStableFunc(ps, func(a, b pair) int { return strings.Compare(a.key.Value, b.key.Value) })
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
	b.Write(strconv.AppendInt(b.AvailableBuffer(), int64(len(s)), 10))
	b.WriteByte(':')
	b.WriteString(s)
}
