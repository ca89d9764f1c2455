package roon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MOO verbs.
const (
	VerbRequest  = "REQUEST"
	VerbContinue = "CONTINUE"
	VerbComplete = "COMPLETE"
)

// maxMessage bounds one MOO message (a zone snapshot of a large system is
// a few hundred kilobytes).
const maxMessage = 8 << 20

// Message is one MOO/1 message, as node-roon-api's moo.js parses and
// writes it.
type Message struct {
	Verb      string // REQUEST, CONTINUE or COMPLETE
	Service   string // REQUEST only: "com.roonlabs.ping:1"
	Name      string // the method (REQUEST) or the answer's name ("Success", "Registered")
	RequestID uint64
	// Headers other than Request-Id, Content-Length and Content-Type.
	Headers     map[string]string
	ContentType string
	Body        []byte // nil without a body; valid JSON when ContentType is application/json
}

// errMOO marks a malformed message; the connection is closed on one.
var errMOO = errors.New("malformed MOO message")

// ParseMOO parses one message strictly: the first line "MOO/1 VERB rest"
// (REQUEST: "service/name"), "Name: value" headers, a Request-Id,
// Content-Length with Content-Type for a body (and neither without one),
// a blank line, exactly Content-Length bytes of body, and a JSON body when
// the type says so. moo.js accepts a little more (a short body, bytes after
// the body, any upper-case verb); a client that cannot trust its framing
// closes the connection instead.
func ParseMOO(b []byte) (*Message, error) {
	bad := func(f string, a ...any) (*Message, error) {
		return nil, fmt.Errorf("%w: %s", errMOO, fmt.Sprintf(f, a...))
	}
	if len(b) == 0 {
		return bad("empty")
	}
	if len(b) > maxMessage {
		return bad("larger than %d bytes", maxMessage)
	}
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 {
		return bad("no newline in the header")
	}
	first := string(b[:nl])
	rest, ok := strings.CutPrefix(first, "MOO/1 ")
	if !ok {
		return bad("first line %q", clip(first))
	}
	verb, arg, ok := strings.Cut(rest, " ")
	if !ok || arg == "" {
		return bad("first line %q", clip(first))
	}
	m := &Message{Verb: verb}
	switch verb {
	case VerbRequest:
		svc, name, ok := strings.Cut(arg, "/")
		if !ok || svc == "" || name == "" {
			return bad("request line %q", clip(first))
		}
		m.Service, m.Name = svc, name
	case VerbContinue, VerbComplete:
		m.Name = arg
	default:
		return bad("verb %q", clip(verb))
	}
	pos := nl + 1
	haveID, haveLen := false, false
	length := 0
	for {
		nl := bytes.IndexByte(b[pos:], '\n')
		if nl < 0 {
			return bad("header not ended by a blank line")
		}
		line := string(b[pos : pos+nl])
		pos += nl + 1
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return bad("header line %q", clip(line))
		}
		v = strings.TrimLeft(v, " ")
		switch k {
		case "Request-Id":
			id, err := strconv.ParseUint(v, 10, 64)
			if err != nil || haveID {
				return bad("Request-Id %q", clip(v))
			}
			m.RequestID, haveID = id, true
		case "Content-Length":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || haveLen {
				return bad("Content-Length %q", clip(v))
			}
			length, haveLen = n, true
		case "Content-Type":
			if v == "" || m.ContentType != "" {
				return bad("Content-Type %q", clip(v))
			}
			m.ContentType = v
		default:
			if m.Headers == nil {
				m.Headers = map[string]string{}
			}
			if len(m.Headers) >= 32 {
				return bad("too many headers")
			}
			m.Headers[k] = v
		}
	}
	if !haveID {
		return bad("no Request-Id")
	}
	body := b[pos:]
	switch {
	case !haveLen:
		if m.ContentType != "" {
			return bad("Content-Type without Content-Length")
		}
		if len(body) != 0 {
			return bad("data after the header without Content-Length")
		}
	case len(body) != length:
		return bad("Content-Length %d, body of %d bytes", length, len(body))
	case length > 0:
		if m.ContentType == "" {
			return bad("Content-Length without Content-Type")
		}
		if m.ContentType == "application/json" && !json.Valid(body) {
			return bad("body is not valid JSON")
		}
		m.Body = body
	}
	return m, nil
}

// clip shortens what an error quotes from the wire.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// encodeMOO writes a message as moo.js does: the first line, Request-Id,
// Content-Length and Content-Type when there is a body, a blank line, the
// body. body, when not nil, is JSON-encoded.
func encodeMOO(verb, name string, id uint64, body any) ([]byte, error) {
	var js []byte
	if body != nil {
		var err error
		if js, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	var b bytes.Buffer
	b.WriteString("MOO/1 ")
	b.WriteString(verb)
	b.WriteByte(' ')
	b.WriteString(name)
	b.WriteString("\nRequest-Id: ")
	b.WriteString(strconv.FormatUint(id, 10))
	b.WriteByte('\n')
	if js != nil {
		b.WriteString("Content-Length: ")
		b.WriteString(strconv.Itoa(len(js)))
		b.WriteString("\nContent-Type: application/json\n")
	}
	b.WriteByte('\n')
	b.Write(js)
	return b.Bytes(), nil
}
