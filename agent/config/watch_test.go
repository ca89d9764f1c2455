package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestDebounce(t *testing.T) {
	t.Run("MergesABurstIntoOneCall", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			kick := make(chan struct{}, 1)
			var fired []time.Duration
			start := time.Now()
			done := make(chan struct{})
			go func() {
				defer close(done)
				debounce(ctx, kick, 200*time.Millisecond, func() { fired = append(fired, time.Since(start)) })
			}()
			for range 10 { // one event every 100ms: never quiet for 200ms
				kick <- struct{}{}
				time.Sleep(100 * time.Millisecond)
			}
			time.Sleep(time.Second)
			synctest.Wait()
			if len(fired) != 1 || fired[0] != 1100*time.Millisecond {
				t.Fatalf("fired at %v, want once at 1.1s (200ms after the last event)", fired)
			}
			cancel()
			<-done
		})
	})
	t.Run("FiresOncePerQuietBurst", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			kick := make(chan struct{}, 1)
			n := 0
			done := make(chan struct{})
			go func() {
				defer close(done)
				debounce(ctx, kick, 200*time.Millisecond, func() { n++ })
			}()
			for range 3 {
				for range 5 {
					select {
					case kick <- struct{}{}:
					default:
					}
				}
				time.Sleep(time.Second)
				synctest.Wait()
			}
			if n != 3 {
				t.Fatalf("fired %d times, want 3", n)
			}
			cancel()
			<-done
		})
	})
	t.Run("StopsWithoutFiringWhenCancelledMidBurst", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			kick := make(chan struct{}, 1)
			n := 0
			done := make(chan struct{})
			go func() {
				defer close(done)
				debounce(ctx, kick, 200*time.Millisecond, func() { n++ })
			}()
			kick <- struct{}{}
			time.Sleep(100 * time.Millisecond)
			cancel()
			<-done
			if n != 0 {
				t.Fatalf("fired %d times", n)
			}
		})
	})
}

// result is one onChange call.
type result struct {
	c   *Config
	err error
}

// watchFixture runs a Watcher on a temp dir's rouse.yaml.
type watchFixture struct {
	t       *testing.T
	path    string
	results chan result
}

const waitGuard = 10 * time.Second // a failure guard only, never a speed assertion

func startWatcher(t *testing.T, initial string) *watchFixture {
	return startWatcherDebounce(t, initial, 50*time.Millisecond)
}

func startWatcherDebounce(t *testing.T, initial string, debounce time.Duration) *watchFixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rouse.yaml")
	if err := os.WriteFile(path, []byte(initial), 0o600); err != nil {
		t.Fatal(err)
	}
	return watchPath(t, path, debounce)
}

// watchPath runs a Watcher on an existing file.
func watchPath(t *testing.T, path string, debounce time.Duration) *watchFixture {
	t.Helper()
	f := &watchFixture{t: t, path: path, results: make(chan result, 100)}
	w := NewWatcher(f.path, testKinds, nil, func(c *Config, err error) { f.results <- result{c, err} })
	w.debounce = debounce
	started := make(chan struct{})
	w.started = func() { close(started) }
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := w.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	select {
	case <-started:
	case <-time.After(waitGuard):
		t.Fatal("watcher did not start")
	}
	return f
}

func (f *watchFixture) write(content string) {
	f.t.Helper()
	if err := os.WriteFile(f.path, []byte(content), 0o600); err != nil {
		f.t.Fatal(err)
	}
}

// renameOver saves like most editors: a new file renamed over the old one.
func (f *watchFixture) renameOver(content string) {
	f.t.Helper()
	tmp := f.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		f.t.Fatal(err)
	}
}

func (f *watchFixture) next() result {
	f.t.Helper()
	select {
	case r := <-f.results:
		return r
	case <-time.After(waitGuard):
		f.t.Fatal("no reload reported")
		return result{}
	}
}

// waitListen waits for a valid reload with listen want. A write in place
// may be seen half done (the file truncated, not yet written): results
// before the wanted one must be valid configs, and never one of bad.
func (f *watchFixture) waitListen(want string, bad ...string) {
	f.t.Helper()
	for {
		got := f.nextListen()
		if got == want {
			return
		}
		for _, b := range bad {
			if got == b {
				f.t.Fatalf("reported listen %q before %q", got, want)
			}
		}
	}
}

func (f *watchFixture) nextListen() string {
	f.t.Helper()
	r := f.next()
	if r.err != nil {
		f.t.Fatalf("reload failed: %v", r.err)
	}
	return r.c.Listen
}

func TestWatcher(t *testing.T) {
	t.Run("ReportsAWriteInPlace", func(t *testing.T) {
		f := startWatcher(t, "listen: 127.0.0.1:8001\n")
		f.write("listen: 127.0.0.1:8002\n")
		f.waitListen("127.0.0.1:8002")
	})
	t.Run("ReportsARenameOver", func(t *testing.T) {
		f := startWatcher(t, "listen: 127.0.0.1:8001\n")
		f.renameOver("listen: 127.0.0.1:8003\n")
		if got := f.nextListen(); got != "127.0.0.1:8003" {
			t.Fatalf("listen = %q", got)
		}
	})
	t.Run("ReportsAVimStyleSave", func(t *testing.T) {
		f := startWatcher(t, "listen: 127.0.0.1:8001\n")
		backup := f.path + "~"
		if err := os.Rename(f.path, backup); err != nil {
			t.Fatal(err)
		}
		f.write("listen: 127.0.0.1:8004\n")
		if err := os.Remove(backup); err != nil {
			t.Fatal(err)
		}
		f.waitListen("127.0.0.1:8004")
	})
	t.Run("ReportsAnInvalidEditAndTheCallerKeepsItsConfig", func(t *testing.T) {
		f := startWatcher(t, "listen: 127.0.0.1:8001\n")
		running, err := Load(f.path, testKinds)
		if err != nil {
			t.Fatal(err)
		}
		apply := func(r result) {
			if r.err == nil {
				running = r.c
			}
		}
		f.renameOver("listen: 127.0.0.1:8001\nbogus: true\n")
		r := f.next()
		apply(r)
		var es Errors
		if !errors.As(r.err, &es) || r.c != nil || es[0].Key != "bogus" || es[0].Line != 2 || es[0].File != f.path {
			t.Fatalf("result = %+v, %v", r.c, r.err)
		}
		if running.Listen != "127.0.0.1:8001" {
			t.Fatalf("running config replaced")
		}
		f.renameOver("listen: 127.0.0.1:8005\n")
		r = f.next()
		apply(r)
		if r.err != nil || running.Listen != "127.0.0.1:8005" {
			t.Fatalf("valid edit after an invalid one: %v", r.err)
		}
	})
	t.Run("ReportsAPermissionChange", func(t *testing.T) {
		f := startWatcher(t, "listen: 127.0.0.1:8001\n")
		if err := os.Chmod(f.path, 0o664); err != nil {
			t.Fatal(err)
		}
		if r := f.next(); !errors.Is(r.err, ErrPermissions) {
			t.Fatalf("err = %v", r.err)
		}
	})
	t.Run("ReportsARemovedFile", func(t *testing.T) {
		f := startWatcher(t, "listen: 127.0.0.1:8001\n")
		if err := os.Remove(f.path); err != nil {
			t.Fatal(err)
		}
		if r := f.next(); !errors.Is(r.err, os.ErrNotExist) || r.c != nil {
			t.Fatalf("result = %+v, %v", r.c, r.err)
		}
	})
	t.Run("SkipsASaveThatChangesNothing", func(t *testing.T) {
		f := startWatcher(t, "listen: 127.0.0.1:8001\n")
		f.renameOver("listen: 127.0.0.1:8001\n")
		// Let the no-op save's debounce pass before the real edit, so a
		// reported no-op would come first.
		time.Sleep(300 * time.Millisecond)
		f.renameOver("listen: 127.0.0.1:8006\n")
		if got := f.nextListen(); got != "127.0.0.1:8006" {
			t.Fatalf("first report is %q, want the real edit", got)
		}
	})
	t.Run("DebouncesABurstOfWrites", func(t *testing.T) {
		f := startWatcherDebounce(t, "listen: 127.0.0.1:8001\n", DefaultDebounce)
		const writes = 20
		for i := range writes {
			if i%2 == 0 {
				f.write("listen: 127.0.0.1:9" + string(rune('0'+i%10)) + "00\n")
			} else {
				f.renameOver("listen: 127.0.0.1:9" + string(rune('0'+i%10)) + "00\n")
			}
		}
		f.write("listen: 127.0.0.1:8999\n")
		calls := 0
		for {
			calls++
			if f.nextListen() == "127.0.0.1:8999" {
				break
			}
		}
		// Give a stray late reload time to show up; it must not.
		time.Sleep(300 * time.Millisecond)
		select {
		case r := <-f.results:
			t.Fatalf("extra reload after the final content: %+v %v", r.c, r.err)
		default:
		}
		if calls >= writes/2 {
			t.Fatalf("%d reloads for %d writes: not debounced", calls, writes+1)
		}
		t.Logf("%d reload(s) for %d writes", calls, writes+1)
	})
	t.Run("IgnoresAnEmptyFileUntilItIsWritten", func(t *testing.T) {
		f := startWatcher(t, "listen: 127.0.0.1:8001\n")
		f.write("")
		time.Sleep(300 * time.Millisecond) // past the debounce: an empty reload would be reported now
		f.write("listen: 127.0.0.1:8007\n")
		if got := f.nextListen(); got != "127.0.0.1:8007" {
			t.Fatalf("first report is %q, want the written file", got)
		}
	})
	t.Run("FollowsASymlinkToAnotherDirectory", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "real.yaml")
		if err := os.WriteFile(target, []byte("listen: 127.0.0.1:8001\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(t.TempDir(), "rouse.yaml")
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		f := watchPath(t, link, 50*time.Millisecond)
		f.path = target // edit the target in place, as a user of a dotfiles repo would
		f.write("listen: 127.0.0.1:8008\n")
		f.waitListen("127.0.0.1:8008")
	})
	t.Run("FollowsTheLinkAfterItIsSwappedToAnotherDirectory", func(t *testing.T) {
		first := filepath.Join(t.TempDir(), "first.yaml")
		second := filepath.Join(t.TempDir(), "second.yaml")
		if err := os.WriteFile(first, []byte("listen: 127.0.0.1:8001\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(second, []byte("listen: 127.0.0.1:8002\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		link := filepath.Join(dir, "rouse.yaml")
		if err := os.Symlink(first, link); err != nil {
			t.Fatal(err)
		}
		f := watchPath(t, link, 50*time.Millisecond)
		// Swap the link as a dotfiles manager does: a new link renamed
		// over the old one.
		tmp := filepath.Join(dir, ".rouse.yaml.new")
		if err := os.Symlink(second, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, link); err != nil {
			t.Fatal(err)
		}
		f.waitListen("127.0.0.1:8002")
		// Edits of the new target, in place and by rename, are applied.
		f.path = second
		f.write("listen: 127.0.0.1:8003\n")
		f.waitListen("127.0.0.1:8003")
		f.renameOver("listen: 127.0.0.1:8004\n")
		f.waitListen("127.0.0.1:8004")
		// The old target is no longer the config: editing it reports nothing.
		if err := os.WriteFile(first, []byte("listen: 127.0.0.1:8009\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		f.write("listen: 127.0.0.1:8005\n")
		f.waitListen("127.0.0.1:8005", "127.0.0.1:8009")
	})
	t.Run("ReloadsAChangeMadeBetweenLoadAndWatch", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "rouse.yaml")
		if err := os.WriteFile(path, []byte("listen: 127.0.0.1:8001\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, testKinds)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("listen: 127.0.0.1:8002\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		f := &watchFixture{t: t, path: path, results: make(chan result, 100)}
		w := NewWatcher(path, testKinds, nil, func(c *Config, err error) { f.results <- result{c, err} })
		w.debounce = 50 * time.Millisecond
		w.Loaded(c)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}()
		f.waitListen("127.0.0.1:8002")
	})
	t.Run("FailsWhenTheDirectoryIsMissing", func(t *testing.T) {
		w := NewWatcher(filepath.Join(t.TempDir(), "nope", "rouse.yaml"), testKinds, nil, func(*Config, error) {})
		if err := w.Run(t.Context()); err == nil {
			t.Fatal("Run succeeded on a missing directory")
		}
	})
}
