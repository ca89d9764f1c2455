// Package redact keeps secrets out of the trackers' errors and logs: it
// masks sensitive query values and user info in URLs, and replaces known
// secret strings (an API key, an Authorization header) wherever they
// appear.
package redact

import (
	"errors"
	"net/url"
	"strings"
)

// Mask replaces a secret.
const Mask = "REDACTED"

var sensitive = []string{"key", "token", "secret", "password", "passwd", "sig", "auth", "session", "cookie", "credential"}

// Sensitive reports whether a query parameter or header name looks like it
// carries a secret.
func Sensitive(name string) bool {
	n := strings.ToLower(name)
	for _, s := range sensitive {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// URL masks sensitive query values and user info in u. Text that does not
// parse as a URL is returned unchanged.
func URL(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return u
	}
	changed := false
	if pu.User != nil {
		pu.User = url.User(Mask)
		changed = true
	}
	q := pu.Query()
	for k := range q {
		if Sensitive(k) {
			q[k] = []string{Mask}
			changed = true
		}
	}
	if !changed {
		return u
	}
	pu.RawQuery = q.Encode()
	return strings.ReplaceAll(pu.String(), url.QueryEscape(Mask), Mask)
}

// Secrets is a set of strings that must never be shown. The zero value
// hides nothing.
type Secrets []string

// FromURL adds the values of u's sensitive query parameters and its
// password.
func (s Secrets) FromURL(u string) Secrets {
	pu, err := url.Parse(u)
	if err != nil {
		return s
	}
	if p, ok := pu.User.Password(); ok {
		s = append(s, p)
	}
	for k, vs := range pu.Query() {
		if Sensitive(k) {
			s = append(s, vs...)
		}
	}
	return s
}

// FromHeaders adds the values of sensitive headers (Authorization,
// X-Api-Key, Cookie, ...).
func (s Secrets) FromHeaders(h map[string]string) Secrets {
	for k, v := range h {
		if Sensitive(k) {
			s = append(s, v)
			// "Bearer xyz": hide the credential on its own too.
			if _, cred, ok := strings.Cut(v, " "); ok {
				s = append(s, cred)
			}
		}
	}
	return s
}

// String replaces every secret (raw and query-escaped) in text.
func (s Secrets) String(text string) string {
	for _, sec := range s {
		if len(sec) < 4 { // too short to hide without mangling the text
			continue
		}
		text = strings.ReplaceAll(text, sec, Mask)
		if esc := url.QueryEscape(sec); esc != sec {
			text = strings.ReplaceAll(text, esc, Mask)
		}
	}
	return text
}

// Error returns err with every secret masked. When something had to be
// masked the error chain is dropped, so no caller can unwrap its way back
// to the secret; keep is then applied to the new error to preserve what
// the caller needs (its permanence, say).
func (s Secrets) Error(err error, keep func(orig, masked error) error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	red := s.String(msg)
	if red == msg {
		return err
	}
	e := errors.New(red)
	if keep != nil {
		return keep(err, e)
	}
	return e
}
