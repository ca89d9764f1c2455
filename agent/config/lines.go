package config

import (
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// lookup finds key (a path like "trackers[1].ready.tcp") in the document
// root: the line of the deepest part of the path it found, and the value
// node when it found the whole path. Parse does not record a line for
// every key it reads; it looks one up here when there is an error to
// place, which keeps the common case — a valid config — cheap.
func lookup(root *yaml.Node, key string) (int, *yaml.Node) {
	if root == nil || key == "" {
		return 0, nil
	}
	d := &decoder{} // for resolve and pairs; what they report is dropped
	n, line := root, 0
	for rest := key; rest != ""; {
		n = d.resolve(n)
		if n == nil {
			return line, nil
		}
		var seg string
		if rest[0] == '[' {
			end := strings.IndexByte(rest, ']')
			if end < 0 || n.Kind != yaml.SequenceNode {
				return line, nil
			}
			i, err := strconv.Atoi(rest[1:end])
			if err != nil || i < 0 || i >= len(n.Content) {
				return line, nil
			}
			n = n.Content[i]
			line = n.Line
			rest = strings.TrimPrefix(rest[end+1:], ".")
			continue
		}
		end := strings.IndexAny(rest, ".[")
		if end < 0 {
			seg, rest = rest, ""
		} else {
			seg, rest = rest[:end], strings.TrimPrefix(rest[end:], ".")
		}
		if n.Kind != yaml.MappingNode {
			return line, nil
		}
		found := false
		for _, p := range d.pairs(n) {
			if p.key.Value == seg {
				n, line, found = p.value, p.key.Line, true
				break
			}
		}
		if !found {
			return line, nil
		}
	}
	return line, d.resolve(n)
}
