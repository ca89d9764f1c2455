package config

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/rouse-dev/rouse/trackers"
)

// DefaultDebounce is how long the watcher waits for a burst of file events
// to end before it reloads.
const DefaultDebounce = 200 * time.Millisecond

// Watcher reloads a config file when it changes. It watches the file's
// directory, not the file, because editors save by writing a new file and
// renaming it over the old one (vim, most IDEs), which a watch on the file
// itself would lose. Bursts of events are merged through a 1-slot channel
// and a debounce: the file is reloaded once the events have been quiet for
// the debounce period. A reload whose mode and content are the same as the
// last one seen (a touch, an editor's no-op save) is not reported, nor is
// an empty file: it is taken for a write in place caught between truncate
// and write (to run on the defaults, write a comment into the file).
//
// When the file is a symlink (or a chain of them), the directory of every
// link and of the file it points to is watched too, and the links are
// followed again on each event: edits of whatever the link points to now
// are seen after it is swapped.
type Watcher struct {
	path     string
	kinds    trackers.Kinds
	logger   *slog.Logger
	onChange func(*Config, error)
	debounce time.Duration
	started  func() // test hook: called once the directory is watched
	loaded   string // fingerprint of the config in force, "" to take the file's at start
}

// Loaded tells the watcher which config is in force (one Load returned):
// a change made to the file after it was read and before Run watches it
// is then reloaded instead of being taken for the starting point.
func (w *Watcher) Loaded(c *Config) {
	if c != nil {
		w.loaded = c.fingerprint
	}
}

// NewWatcher returns a watcher of the config file at path. onChange is
// called from the watcher's goroutine, one call at a time, with the new
// valid config, or with the error that made the new content unusable (the
// caller keeps its running config, logs the error and shows it in
// /api/v1/health). logger should carry the component attribute already; a
// nil logger discards. The file is parsed against kinds.
func NewWatcher(path string, kinds trackers.Kinds, logger *slog.Logger, onChange func(*Config, error)) *Watcher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Watcher{
		path:     path,
		kinds:    kinds,
		logger:   logger,
		onChange: onChange,
		debounce: DefaultDebounce,
	}
}

// fingerprintOf digests what a reload would see now: the file's mode and
// content (never more than Parse would read), or its absence.
func fingerprintOf(path string) string {
	if _, err := os.Stat(path); err != nil {
		return "missing"
	}
	data, fi, err := readLimited(path)
	if err != nil {
		return "unreadable"
	}
	return fingerprint(fi, data)
}

// fingerprint digests one read of the file: its mode and content and, for
// a file too large to parse (which was not read whole), its size and
// modification time.
func fingerprint(fi fs.FileInfo, data []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%o\n", fi.Mode())
	if fi.Size() > MaxFileBytes {
		fmt.Fprintf(h, "%d %d\n", fi.Size(), fi.ModTime().UnixNano())
	}
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// Run watches until ctx is done. It returns an error only when the watch
// cannot be set up (the directory does not exist); every goroutine it
// started has ended when it returns.
func (w *Watcher) Run(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch config: %w", err)
	}
	defer fw.Close()

	abs, err := filepath.Abs(w.path)
	if err != nil {
		return fmt.Errorf("watch config: %w", err)
	}
	if err := fw.Add(filepath.Dir(abs)); err != nil {
		return fmt.Errorf("watch config directory %s: %w", filepath.Dir(abs), err)
	}
	watched := map[string]bool{filepath.Dir(abs): true}
	names := w.follow(fw, abs, watched)

	kick := make(chan struct{}, 1)
	last := w.loaded
	if last == "" {
		last = fingerprintOf(w.path)
	} else if fingerprintOf(w.path) != last {
		kick <- struct{}{} // changed since it was loaded: reload at once
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		debounce(ctx, kick, w.debounce, func() { last = w.reload(last) })
	}()

	w.logger.Debug("watching config", "path", w.path)
	if w.started != nil {
		w.started()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if !names[ev.Name] {
				continue
			}
			// A link on the way may now point elsewhere: follow it again,
			// so that edits of whatever it points to now are seen.
			names = w.follow(fw, abs, watched)
			select {
			case kick <- struct{}{}:
			default:
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			// An overflow may have hidden our file's event: reload to be safe.
			w.logger.Warn("config watch error", "err", err)
			select {
			case kick <- struct{}{}:
			default:
			}
		}
	}
}

// follow returns the names whose events matter: the config's path, every
// symlink on the way to the file and the file itself, adding a watch on
// each of their directories not watched yet (watched is updated).
func (w *Watcher) follow(fw *fsnotify.Watcher, abs string, watched map[string]bool) map[string]bool {
	names := map[string]bool{abs: true}
	p := abs
	for range 40 { // as the kernel's ELOOP bound
		target, err := os.Readlink(p)
		if err != nil {
			break // not a link (or gone): p is the file
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(p), target)
		}
		p = filepath.Clean(target)
		names[p] = true
		if dir := filepath.Dir(p); !watched[dir] {
			if err := fw.Add(dir); err != nil {
				w.logger.Warn("cannot watch the config symlink's target directory", "dir", dir, "err", err)
				continue
			}
			watched[dir] = true
		}
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil && !names[real] {
		// A link among the target's directories: watch the real file too.
		names[real] = true
		if dir := filepath.Dir(real); !watched[dir] {
			if err := fw.Add(dir); err == nil {
				watched[dir] = true
			}
		}
	}
	return names
}

// debounce calls fire once kicks have been quiet for wait, until ctx is done.
func debounce(ctx context.Context, kick <-chan struct{}, wait time.Duration, fire func()) {
	t := time.NewTimer(wait)
	t.Stop()
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		}
		t.Reset(wait)
	quiet:
		for {
			select {
			case <-ctx.Done():
				return
			case <-kick:
				t.Reset(wait)
			case <-t.C:
				break quiet
			}
		}
		fire()
	}
}

// reload loads the file and reports the outcome unless it saw the same
// thing as last time; it returns the new fingerprint.
func (w *Watcher) reload(last string) string {
	if fi, err := os.Stat(w.path); err == nil && fi.Size() == 0 {
		// Most likely a write in place caught between truncate and write;
		// its next event reloads. Never swap the running config for an
		// empty one on that evidence.
		w.logger.Debug("config file is empty; waiting for the write to finish", "path", w.path)
		return last
	}
	c, fp, err := load(w.path, w.kinds)
	if fp == last {
		w.logger.Debug("config unchanged", "path", w.path)
		return fp
	}
	if err != nil && errors.Is(err, fs.ErrNotExist) {
		err = fmt.Errorf("config file %s is gone; keeping the running config: %w", w.path, err)
	}
	if err != nil {
		w.logger.Debug("config change rejected", "path", w.path, "err", err)
	} else {
		w.logger.Debug("config changed", "path", w.path)
	}
	w.onChange(c, err)
	return fp
}
