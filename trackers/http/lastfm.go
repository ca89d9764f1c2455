package http

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/internal/jpath"
	"github.com/rouse-dev/rouse/trackers/internal/redact"
)

// LastfmAPIURL is Last.fm's public API endpoint, the default api_url.
const LastfmAPIURL = "https://ws.audioscrobbler.com/2.0/"

// LastfmKind is the lastfm tracker kind, the http kind preset for
// Last.fm's recent tracks.
var LastfmKind = trackers.KindOf("lastfm", true, DefaultLastfmOptions, NewLastfm)

// LastfmOptions configures the lastfm preset: an http tracker over Last.fm's
// user.getrecenttracks.
type LastfmOptions struct {
	// User is the Last.fm user name. Required.
	User string `yaml:"user"`
	// APIKeyFile holds the API key (~ is expanded; surrounding space
	// ignored). It is read at every start, so a new key needs only a
	// restart. The key never appears in logs, errors or the API. Required.
	APIKeyFile string `yaml:"api_key_file"`
	// APIURL is the endpoint. Default Last.fm's public 2.0/ endpoint.
	APIURL string `yaml:"api_url"`
	// Interval between polls. Default 60s, at least 1s.
	Interval time.Duration `yaml:"interval"`
	// Limit is the page size, 1..200. Default 200.
	Limit int `yaml:"limit"`
	// MaxItemBytes bounds one scrobble's JSON, as the http kind's
	// max_item_bytes. Default 1 MiB, at most 4 MiB.
	MaxItemBytes int64 `yaml:"max_item_bytes"`
}

// DefaultLastfmOptions returns LastfmOptions with the defaults filled in.
func DefaultLastfmOptions() *LastfmOptions {
	return &LastfmOptions{APIURL: LastfmAPIURL, Interval: 60 * time.Second, Limit: 200, MaxItemBytes: trackers.DefaultMaxItemBytes}
}

var _ trackers.Validator = (*LastfmOptions)(nil)

// Validate implements trackers.Validator.
func (o *LastfmOptions) Validate() []trackers.FieldError {
	var errs []trackers.FieldError
	add := func(k, f string, a ...any) {
		errs = append(errs, trackers.FieldError{Key: k, Msg: fmt.Sprintf(f, a...)})
	}
	if strings.TrimSpace(o.User) == "" {
		add("user", "required")
	}
	if strings.TrimSpace(o.APIKeyFile) == "" {
		add("api_key_file", "required (a file holding your Last.fm API key)")
	}
	if u, err := url.Parse(o.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("api_url", "want an http or https URL, got %q", o.APIURL)
	}
	if o.Interval < time.Second {
		add("interval", "must be at least 1s, got %v", o.Interval)
	}
	if o.Limit < 1 || o.Limit > 200 {
		add("limit", "must be between 1 and 200, got %d", o.Limit)
	}
	if fe := trackers.CheckMaxItemBytes(o.MaxItemBytes); fe != nil {
		errs = append(errs, *fe)
	}
	return errs
}

// Options expands the preset into http tracker options for the given key.
// Last.fm lists the newest scrobble first and reports totalPages, so pages go
// 1..totalPages with from fixed; the id is a hash of the scrobble's time,
// artist and title; the "now playing" entry has no date and is skipped until
// it is scrobbled.
func (o *LastfmOptions) Options(apiKey string) (Options, error) {
	u, err := url.Parse(o.APIURL)
	if err != nil {
		return Options{}, fmt.Errorf("api_url: %w", err)
	}
	q := u.Query()
	q.Set("method", "user.getrecenttracks")
	q.Set("user", o.User)
	q.Set("api_key", apiKey)
	q.Set("format", "json")
	q.Set("limit", strconv.Itoa(o.Limit))
	q.Del("from")
	q.Del("page")
	// Encode escapes braces, so neither the user nor the key can inject
	// template actions.
	u.RawQuery = q.Encode() + "&from={{.Since}}&page={{.Page}}"
	opts := *DefaultOptions()
	opts.URL = u.String()
	opts.Interval = o.Interval
	opts.Items = ItemsOptions{
		Path:       "recenttracks.track",
		IDFields:   []string{"date.uts", "artist.#text", "name"},
		Time:       "date.uts",
		TimeFormat: jpath.FormatUnix,
	}
	opts.Paging = PagingOptions{TotalPages: "recenttracks.@attr.totalPages", Order: OrderNewestFirst}
	opts.Cursor = CursorOptions{From: CursorMaxTime, Offset: 1}
	opts.MaxItemBytes = o.MaxItemBytes
	return opts, nil
}

// NewLastfm builds a lastfm tracker. The key file is read when it runs.
func NewLastfm(o LastfmOptions, deps trackers.Deps) (*Tracker, error) {
	if err := trackers.JoinFieldErrors(o.Validate()); err != nil {
		return nil, fmt.Errorf("lastfm tracker %q: %w", deps.Name, err)
	}
	// Build with a placeholder key: the real one is read in Run.
	opts, err := o.Options("placeholder")
	if err != nil {
		return nil, err
	}
	t, err := New(opts, deps)
	if err != nil {
		return nil, err
	}
	t.prepare = func() (string, redact.Secrets, error) {
		key, err := readKeyFile(o.APIKeyFile)
		if err != nil {
			return "", nil, permanent(err)
		}
		opts, err := o.Options(key)
		if err != nil {
			return "", nil, permanent(err)
		}
		return opts.URL, redact.Secrets{key}, nil
	}
	t.skip = func(item any) bool {
		np, _ := jpath.Get(item, "@attr.nowplaying")
		s, _ := jpath.String(np)
		return s == "true"
	}
	t.apiError = lastfmError
	return t, nil
}

func readKeyFile(name string) (string, error) {
	if name == "~" || strings.HasPrefix(name, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("api_key_file: expand ~: %w", err)
		}
		name = filepath.Join(home, name[1:])
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("api_key_file: %w (put your Last.fm API key in it)", err)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return "", fmt.Errorf("api_key_file %s is empty (put your Last.fm API key in it)", name)
	}
	return key, nil
}

// lastfmError reads Last.fm's in-band error ({"error":N,"message":...}).
// Codes 8 (operation failed), 11 (service offline), 16 (temporary error)
// and 29 (rate limit) are worth retrying; the others (bad key, unknown
// user, ...) are not.
func lastfmError(body []byte) (error, bool) {
	var e struct {
		Error   *int   `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error == nil {
		return nil, false
	}
	err := fmt.Errorf("last.fm error %d: %s", *e.Error, e.Message)
	switch *e.Error {
	case 8, 11, 16, 29:
		return err, true
	}
	return err, false
}
