package http

import (
	"bytes"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/internal/jpath"
)

// Paging orders and cursor sources.
const (
	OrderNewestFirst = "newest_first"
	OrderOldestFirst = "oldest_first"
	CursorMaxTime    = "max_time"
	CursorNone       = "none"
)

// Options configures an http tracker. DefaultOptions fills in the defaults
// named on each field.
type Options struct {
	// URL is a text/template rendered for every request with .Since (the
	// cursor, unix seconds) and .Page (1-based), e.g.
	// "https://x/api?from={{.Since}}&page={{.Page}}". Required.
	URL string `yaml:"url"`
	// Method is the HTTP method. Default GET.
	Method string `yaml:"method"`
	// Headers are sent with every request. Default none.
	Headers map[string]string `yaml:"headers"`
	// Interval between polls. Default 60s, at least 1s.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one request, body included. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// Items says where the items are and how to read them.
	Items ItemsOptions `yaml:"items"`
	// Paging says how pages work. Default none (one request per poll).
	Paging PagingOptions `yaml:"paging"`
	// Cursor says how the next .Since is derived.
	Cursor CursorOptions `yaml:"cursor"`
	// MaxPages bounds the pages fetched in one poll; a longer catch-up
	// goes on at the next poll from where it stopped. Default 1000.
	MaxPages int `yaml:"max_pages"`
	// Retry bounds retries of one poll.
	Retry RetryOptions `yaml:"retry"`
	// InitialSince is .Since before the first cursor exists. Default 0.
	InitialSince int64 `yaml:"initial_since"`
	// MaxItemBytes bounds one item's JSON: a larger item is not stored
	// (a note event, the metric rouse_items_refused_total and the
	// tracker's last error say so) and the poll goes on. Default 1 MiB,
	// at most 4 MiB.
	MaxItemBytes int64 `yaml:"max_item_bytes"`
}

// ItemsOptions locates the items in a response and their id and time.
type ItemsOptions struct {
	// Path is the dot path to the item list; empty means the body is the
	// list. A lone object there counts as a list of one. Default "".
	Path string `yaml:"path"`
	// ID is the field path of an item's id. Default "id". An item without
	// it gets the SHA-256 of its JSON.
	ID string `yaml:"id"`
	// IDFields, when set, replaces ID: the id is the SHA-256 of these
	// fields' values (for APIs with no id, like Last.fm). Default none.
	IDFields []string `yaml:"id_fields"`
	// Time is the field path of an item's timestamp. An item without it is
	// not an item yet (Last.fm's "now playing") and is skipped. Empty means
	// the arrival time, which needs cursor.from: none. Default "".
	Time string `yaml:"time"`
	// TimeFormat is auto (default), unix, unix_ms or rfc3339.
	TimeFormat string `yaml:"time_format"`
}

// PagingOptions describes how pages work. In YAML, "paging: none" is the
// zero value.
type PagingOptions struct {
	// TotalPages is the field path of the page count in each response;
	// pages 1..N are fetched with .Since fixed. Empty or "none": no page
	// count. Default "".
	TotalPages string `yaml:"total_pages"`
	// Order is the order of items across pages: newest_first (default) or
	// oldest_first. See the package doc for what it changes.
	Order string `yaml:"order"`
}

// SetScalar accepts "paging: none" (trackers.ScalarShorthand).
func (p *PagingOptions) SetScalar(s string) error {
	if s == "none" || s == "" {
		*p = PagingOptions{}
		return nil
	}
	return fmt.Errorf("want none or a mapping with total_pages and order, got %q", s)
}

var _ trackers.ScalarShorthand = (*PagingOptions)(nil)

// CursorOptions derives the next .Since.
type CursorOptions struct {
	// From is max_time (default: the newest item's unix time plus Offset)
	// or none (.Since stays initial_since).
	From string `yaml:"from"`
	// Offset is added to the newest item's time. Default 1.
	Offset int64 `yaml:"offset"`
}

// RetryOptions bounds retries of failed requests within one poll.
type RetryOptions struct {
	Initial time.Duration `yaml:"initial"` // first backoff ceiling. Default 1s.
	Max     time.Duration `yaml:"max"`     // backoff cap. Default 60s.
	Budget  int           `yaml:"budget"`  // retries per poll. Default 10.
}

// DefaultOptions returns Options with every default filled in.
func DefaultOptions() *Options {
	return &Options{
		Method:       "GET",
		Interval:     60 * time.Second,
		Timeout:      10 * time.Second,
		Items:        ItemsOptions{ID: "id", TimeFormat: jpath.FormatAuto},
		Paging:       PagingOptions{Order: OrderNewestFirst},
		Cursor:       CursorOptions{From: CursorMaxTime, Offset: 1},
		MaxPages:     1000,
		Retry:        RetryOptions{Initial: time.Second, Max: 60 * time.Second, Budget: 10},
		MaxItemBytes: trackers.DefaultMaxItemBytes,
	}
}

var _ trackers.Validator = (*Options)(nil)

// Validate implements trackers.Validator.
func (o *Options) Validate() []trackers.FieldError {
	var errs []trackers.FieldError
	add := func(k, f string, a ...any) {
		errs = append(errs, trackers.FieldError{Key: k, Msg: fmt.Sprintf(f, a...)})
	}
	if o.URL == "" {
		add("url", "required")
	} else if err := checkURLTemplate(o.URL); err != nil {
		add("url", "%v", err)
	}
	switch strings.ToUpper(o.Method) {
	case "GET", "POST", "HEAD", "PUT":
	default:
		add("method", "want GET, POST, PUT or HEAD, got %q", o.Method)
	}
	if o.Interval < time.Second {
		add("interval", "must be at least 1s, got %v", o.Interval)
	}
	if o.Timeout <= 0 {
		add("timeout", "must be positive, got %v", o.Timeout)
	}
	if !jpath.ValidFormat(o.Items.TimeFormat) {
		add("items.time_format", "want auto, unix, unix_ms or rfc3339, got %q", o.Items.TimeFormat)
	}
	switch o.Paging.Order {
	case "", OrderNewestFirst, OrderOldestFirst:
	default:
		add("paging.order", "want newest_first or oldest_first, got %q", o.Paging.Order)
	}
	switch o.Cursor.From {
	case CursorMaxTime:
		if o.Items.Time == "" {
			add("items.time", "required when cursor.from is max_time (or set cursor.from: none)")
		}
	case CursorNone:
	default:
		add("cursor.from", "want max_time or none, got %q", o.Cursor.From)
	}
	if o.Cursor.Offset < 0 {
		add("cursor.offset", "must not be negative, got %d", o.Cursor.Offset)
	}
	if o.MaxPages < 1 {
		add("max_pages", "must be at least 1, got %d", o.MaxPages)
	}
	if o.Retry.Initial <= 0 {
		add("retry.initial", "must be positive, got %v", o.Retry.Initial)
	}
	if o.Retry.Max < o.Retry.Initial {
		add("retry.max", "must be at least retry.initial, got %v", o.Retry.Max)
	}
	if o.Retry.Budget < 0 {
		add("retry.budget", "must not be negative, got %d", o.Retry.Budget)
	}
	if fe := trackers.CheckMaxItemBytes(o.MaxItemBytes); fe != nil {
		errs = append(errs, *fe)
	}
	return errs
}

// urlData is what the URL template sees.
type urlData struct {
	Since int64 // the cursor, unix seconds
	Page  int   // 1-based page number
}

// urlTemplates holds parsed URL templates by their text, with the
// outcome of checkURLTemplate for each, so that a URL is parsed and
// checked once although config validates it and New builds on it (and a
// reload repeats both). A template is safe to Execute concurrently. The
// cache is emptied when it passes maxURLTemplates.
var (
	urlTemplates  sync.Map // string → *urlTemplate
	urlTemplatesN atomic.Int64
)

const maxURLTemplates = 4096

// urlTemplate is a parsed URL template. One whose only actions are
// {{.Since}} and {{.Page}} (the common case) is kept as its pieces and
// rendered by concatenation, which gives what text/template gives for
// them; any other is a text/template.
type urlTemplate struct {
	parts []urlPart          // a simple template's pieces, or nil
	t     *template.Template // the others
	check error              // what checkURLTemplate says of it
}

// urlPart is literal text, or one of the fields (field 's': .Since, 'p':
// .Page).
type urlPart struct {
	text  string
	field byte
}

// simpleURLTemplate splits s into pieces when its only actions are
// {{.Since}} and {{.Page}} (spaces allowed inside the braces, no trim
// markers, comments or anything else).
func simpleURLTemplate(s string) ([]urlPart, bool) {
	var parts []urlPart
	for s != "" {
		i := strings.Index(s, "{{")
		if i < 0 {
			parts = append(parts, urlPart{text: s})
			break
		}
		if i > 0 {
			parts = append(parts, urlPart{text: s[:i]})
		}
		rest := s[i+2:]
		j := strings.Index(rest, "}}")
		if j < 0 {
			return nil, false
		}
		switch strings.Trim(rest[:j], " ") {
		case ".Since":
			parts = append(parts, urlPart{field: 's'})
		case ".Page":
			parts = append(parts, urlPart{field: 'p'})
		default:
			return nil, false
		}
		s = rest[j+2:]
	}
	return parts, true
}

func parseURLTemplate(s string) (*urlTemplate, error) {
	if u, ok := urlTemplates.Load(s); ok {
		return u.(*urlTemplate), nil
	}
	u := &urlTemplate{}
	if parts, ok := simpleURLTemplate(s); ok {
		u.parts = parts
	} else {
		t, err := template.New("url").Option("missingkey=error").Parse(s)
		if err != nil {
			return nil, err
		}
		u.t = t
	}
	u.check = checkRendered(u)
	if urlTemplatesN.Add(1) > maxURLTemplates {
		urlTemplates.Clear()
		urlTemplatesN.Store(0)
	}
	urlTemplates.Store(s, u)
	return u, nil
}

func renderURL(u *urlTemplate, since int64, page int) (string, error) {
	if u.t == nil {
		var b []byte
		for _, p := range u.parts {
			switch p.field {
			case 's':
				b = strconv.AppendInt(b, since, 10)
			case 'p':
				b = strconv.AppendInt(b, int64(page), 10)
			default:
				b = append(b, p.text...)
			}
		}
		return string(b), nil
	}
	var b bytes.Buffer
	if err := u.t.Execute(&b, urlData{Since: since, Page: page}); err != nil {
		return "", err
	}
	return b.String(), nil
}

func checkURLTemplate(s string) error {
	u, err := parseURLTemplate(s)
	if err != nil {
		return fmt.Errorf("bad template: %w", err)
	}
	return u.check
}

// checkRendered renders t for .Since 0 and page 1 and checks that it
// gives an http or https URL with a host.
func checkRendered(t *urlTemplate) error {
	out, err := renderURL(t, 0, 1)
	if err != nil {
		return fmt.Errorf("bad template: %w", err)
	}
	u, err := url.Parse(out)
	if err != nil {
		return fmt.Errorf("bad URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("want an http or https URL, got scheme %q", u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("URL has no host")
	}
	return nil
}
