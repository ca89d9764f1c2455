//go:build !windows

package perm

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, p string, mode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("x"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func chmod(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// asRoot skips a case that needs to give a file away to another user.
func asRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("giving a file to another user needs root")
	}
}

const nobody = 65534

func wantRefused(t *testing.T, err error, fix string) {
	t.Helper()
	if err == nil {
		t.Fatal("accepted; want refused")
	}
	if !errors.Is(err, ErrInsecure) {
		t.Fatalf("err = %v; want ErrInsecure", err)
	}
	if !strings.Contains(err.Error(), "; run: "+fix) {
		t.Fatalf("err = %q; want the fix %q", err, fix)
	}
}

func TestFile(t *testing.T) {
	t.Run("AcceptsAPrivateFileInPrivateDirectories", func(t *testing.T) {
		p := write(t, filepath.Join(t.TempDir(), "a", "rouse.yaml"), 0o644)
		if err := File(p); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("RefusesAGroupWritableFile", func(t *testing.T) {
		p := write(t, filepath.Join(t.TempDir(), "rouse.yaml"), 0o664)
		wantRefused(t, File(p), "chmod go-w "+p)
	})
	t.Run("RefusesAWorldWritableDirectoryAbove", func(t *testing.T) {
		d := t.TempDir()
		p := write(t, filepath.Join(d, "conf", "rouse.yaml"), 0o600)
		chmod(t, filepath.Join(d, "conf"), 0o777)
		err := File(p)
		wantRefused(t, err, "chmod go-w "+filepath.Join(d, "conf"))
		if !strings.Contains(err.Error(), "writable by group and others (mode 0777)") {
			t.Fatalf("err = %q", err)
		}
	})
	t.Run("RefusesAGroupWritableDirectoryTwoLevelsUp", func(t *testing.T) {
		d := t.TempDir()
		p := write(t, filepath.Join(d, "a", "b", "rouse.yaml"), 0o600)
		chmod(t, filepath.Join(d, "a"), 0o775)
		wantRefused(t, File(p), "chmod go-w "+filepath.Join(d, "a"))
	})
	t.Run("AcceptsAStickyDirectoryAboveAnEntryItOwns", func(t *testing.T) {
		d := t.TempDir()
		p := write(t, filepath.Join(d, "tmp", "mine", "rouse.yaml"), 0o600)
		chmod(t, filepath.Join(d, "tmp"), 0o777|os.ModeSticky)
		if err := File(p); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("RefusesAStickyDirectoryAboveAnotherUsersEntry", func(t *testing.T) {
		asRoot(t)
		d := t.TempDir()
		p := write(t, filepath.Join(d, "tmp", "theirs", "rouse.yaml"), 0o600)
		chmod(t, filepath.Join(d, "tmp"), 0o777|os.ModeSticky)
		if err := os.Chown(filepath.Join(d, "tmp", "theirs"), nobody, nobody); err != nil {
			t.Fatal(err)
		}
		wantRefused(t, File(p), "chown root "+filepath.Join(d, "tmp", "theirs"))
	})
	t.Run("RootRefusesAFileOwnedByAnotherUser", func(t *testing.T) {
		asRoot(t)
		p := write(t, filepath.Join(t.TempDir(), "rouse.yaml"), 0o600)
		if err := os.Chown(p, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		err := File(p)
		wantRefused(t, err, "chown root "+p)
		if !strings.Contains(err.Error(), "not by root (the agent's user)") {
			t.Fatalf("err = %q", err)
		}
	})
	t.Run("AUserAcceptsTheirOwnAndRootsFilesOnly", func(t *testing.T) {
		asRoot(t)
		d := t.TempDir()
		mine := write(t, filepath.Join(d, "mine.yaml"), 0o600)
		roots := write(t, filepath.Join(d, "roots.yaml"), 0o644)
		theirs := write(t, filepath.Join(d, "theirs.yaml"), 0o600)
		if err := os.Chown(mine, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(theirs, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		old := euid
		euid = func() uint32 { return 4242 }
		t.Cleanup(func() { euid = old })
		if err := File(mine); err != nil {
			t.Fatal(err)
		}
		if err := File(roots); err != nil {
			t.Fatal(err)
		}
		wantRefused(t, File(theirs), "sudo chown 4242 "+theirs)
	})
	t.Run("StopsAtHome", func(t *testing.T) {
		d := t.TempDir()
		home := filepath.Join(d, "home")
		p := write(t, filepath.Join(home, ".config", "rouse.yaml"), 0o600)
		chmod(t, d, 0o777) // above $HOME: not looked at
		t.Setenv("HOME", home)
		if err := File(p); err != nil {
			t.Fatal(err)
		}
		chmod(t, home, 0o777) // $HOME itself is looked at
		wantRefused(t, File(p), "chmod go-w "+home)
	})
	t.Run("FollowsASymlinkAndChecksBothSides", func(t *testing.T) {
		d := t.TempDir()
		target := write(t, filepath.Join(d, "real", "rouse.yaml"), 0o600)
		link := filepath.Join(d, "link", "rouse.yaml")
		if err := os.MkdirAll(filepath.Dir(link), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if err := File(link); err != nil {
			t.Fatal(err)
		}
		chmod(t, filepath.Join(d, "link"), 0o777)
		wantRefused(t, File(link), "chmod go-w "+filepath.Join(d, "link"))
		chmod(t, filepath.Join(d, "link"), 0o700)
		chmod(t, target, 0o666)
		wantRefused(t, File(link), "chmod go-w "+target)
	})
	t.Run("QuotesPathsForTheShell", func(t *testing.T) {
		p := write(t, filepath.Join(t.TempDir(), "it's here.yaml"), 0o666)
		wantRefused(t, File(p), `chmod go-w '`+filepath.Dir(p)+`/it'\''s here.yaml'`)
	})
}

func TestSecret(t *testing.T) {
	p := write(t, filepath.Join(t.TempDir(), "api-token"), 0o600)
	if err := Secret(p); err != nil {
		t.Fatal(err)
	}
	chmod(t, p, 0o640)
	err := Secret(p)
	wantRefused(t, err, "chmod 600 "+p)
	if !strings.Contains(err.Error(), "accessible by group (mode 0640)") {
		t.Fatalf("err = %q", err)
	}
}

func TestDir(t *testing.T) {
	t.Run("CreatesAMissingDirectory0700", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "share", "rouse")
		if err := Dir(p); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Fatalf("mode %04o; want 0700", fi.Mode().Perm())
		}
	})
	for _, mode := range []os.FileMode{0o755, 0o777, 0o750} {
		t.Run("RefusesMode"+mode.String(), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "rouse")
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			chmod(t, p, mode)
			wantRefused(t, Dir(p), "chmod 700 "+p)
		})
	}
	t.Run("RefusesAWritableParent", func(t *testing.T) {
		d := t.TempDir()
		p := filepath.Join(d, "lib", "rouse")
		if err := Dir(p); err != nil {
			t.Fatal(err)
		}
		chmod(t, filepath.Join(d, "lib"), 0o777)
		wantRefused(t, Dir(p), "chmod go-w "+filepath.Join(d, "lib"))
	})
	t.Run("RefusesAnotherUsersDirectory", func(t *testing.T) {
		asRoot(t)
		p := filepath.Join(t.TempDir(), "rouse")
		if err := Dir(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		wantRefused(t, Dir(p), "chown root "+p)
	})
}

func TestCreateFile(t *testing.T) {
	t.Run("CreatesMissingFiles0600", func(t *testing.T) {
		old := syscallUmask(0)
		defer syscallUmask(old)
		p := filepath.Join(t.TempDir(), "rouse.db")
		if err := CreateFile(p); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %04o; want 0600", fi.Mode().Perm())
		}
	})
	t.Run("NarrowsItsOwnLooseFile", func(t *testing.T) {
		p := write(t, filepath.Join(t.TempDir(), "rouse.db"), 0o644)
		if err := CreateFile(p); err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %04o; want 0600", fi.Mode().Perm())
		}
		if b, _ := os.ReadFile(p); string(b) != "x" {
			t.Fatalf("content changed: %q", b)
		}
	})
	t.Run("RefusesAPlantedFile", func(t *testing.T) {
		asRoot(t)
		p := write(t, filepath.Join(t.TempDir(), "rouse.db"), 0o644)
		if err := os.Chown(p, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		wantRefused(t, CreateFile(p), "chown root "+p)
	})
	t.Run("RefusesASymlink", func(t *testing.T) {
		d := t.TempDir()
		p := filepath.Join(d, "rouse.db")
		if err := os.Symlink("/etc/passwd", p); err != nil {
			t.Fatal(err)
		}
		wantRefused(t, CreateFile(p), "rm "+p)
	})
}
