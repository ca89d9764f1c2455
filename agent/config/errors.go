package config

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/rouse-dev/rouse/internal/perm"
)

// Sentinel causes a FieldError may wrap; test with errors.Is.
var (
	ErrUnknownKey   = errors.New("unknown key")
	ErrDuplicate    = errors.New("duplicate")
	ErrCycle        = errors.New("dependency cycle")
	ErrUnknownDep   = errors.New("unknown component")
	ErrUnknownKind  = errors.New("unknown kind")
	ErrRequired     = errors.New("required")
	ErrSyntax       = errors.New("invalid YAML")
	ErrPermissions  = perm.ErrInsecure
	ErrNotLoopback  = errors.New("not a loopback address")
	ErrWrongType    = errors.New("wrong type")
	ErrInvalidValue = errors.New("invalid value")
	ErrTooLarge     = errors.New("config too large")
)

// FieldError is one problem in a config file.
type FieldError struct {
	File  string // the file as named to Parse or Load
	Line  int    // 1-based; 0 when unknown (a config built in code)
	Key   string // key path, e.g. "trackers[1].interval"; "" for the whole file
	Value string // the value found, when there is one
	Err   error  // what was expected
	Hint  string // what to do about it, or what is allowed; may be ""
}

// Error formats the error as `file:line: key: expected, got "value"`.
func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("invalid")
	}
	if e.Value != "" {
		b.WriteString(", got ")
		b.WriteString(strconv.Quote(e.Value))
	}
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *FieldError) Unwrap() error { return e.Err }

// Errors is every problem found in one config, ordered by line.
type Errors []*FieldError

// Error lists the errors one per line.
func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Unwrap lets errors.Is and errors.As look into every FieldError.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sortErrors orders errors by line, then key, keeping discovery order for
// ties.
func sortErrors(es Errors) {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Line != es[j].Line {
			return es[i].Line < es[j].Line
		}
		return es[i].Key < es[j].Key
	})
}

// wrapf makes an error wrapping sentinel with a message.
func wrapf(sentinel error, format string, args ...any) error {
	return &causeError{msg: fmt.Sprintf(format, args...), cause: sentinel}
}

// causeError is a message that wraps a sentinel without repeating it.
type causeError struct {
	msg   string
	cause error
}

func (e *causeError) Error() string { return e.msg }
func (e *causeError) Unwrap() error { return e.cause }
