package trust

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/kerneltest"
)

func TestPath(t *testing.T) {
	kerneltest.RequireRoot(t)
	base := t.TempDir() // under /tmp: sticky, root's
	mk := func(p string, mode os.FileMode, uid int) string {
		t.Helper()
		full := filepath.Join(base, p)
		if err := os.MkdirAll(full, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(full, uid, 0); err != nil {
			t.Fatal(err)
		}
		return full
	}
	good := mk("good/root", 0o755, 0)
	mk("userowned", 0o755, 65534)
	mk("userowned/root", 0o755, 0)
	mk("worldw", 0o777, 0)
	mk("worldw/root", 0o755, 0)
	mk("sticky", os.ModeSticky|0o777, 0)
	mk("sticky/root", 0o755, 0)
	if err := os.Symlink(good, filepath.Join(base, "userowned", "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(base, "userowned", "root"), filepath.Join(base, "good", "tousers")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, want string
	}{
		{"good/root/var/lib/cortex", ""},
		{"sticky/root/var", ""},
		{"good/not-yet/there", ""},
		{"userowned/root/var", "userowned is owned by uid 65534, not root"},
		{"worldw/root", "worldw is writable by every user"},
		{"userowned/link/var", "userowned is owned by uid 65534"},
		{"good/tousers/var", "userowned is owned by uid 65534, not root (through the symlink " + filepath.Join(base, "good", "tousers") + ")"},
	} {
		err := Path(filepath.Join(base, tc.path))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.path, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.path, err, tc.want)
		}
	}
}

func TestExecutable(t *testing.T) {
	kerneltest.RequireRoot(t)
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := Executable(write("ok", 0o755)); err != nil {
		t.Errorf("0755 root file: %v", err)
	}
	if err := Executable(write("ww", 0o757)); !IsUntrusted(err) || !strings.Contains(err.Error(), "writable by every user") {
		t.Errorf("world-writable: %v", err)
	}
	gw := write("gw", 0o775)
	if err := os.Chown(gw, 0, 65534); err != nil {
		t.Fatal(err)
	}
	if err := Executable(gw); !IsUntrusted(err) || !strings.Contains(err.Error(), "writable by group 65534") {
		t.Errorf("group-writable: %v", err)
	}
	if err := Executable(write("noexec", 0o644)); err == nil || IsUntrusted(err) {
		t.Errorf("not executable: %v", err)
	}
	uo := write("userowned", 0o755)
	if err := os.Chown(uo, 65534, 0); err != nil {
		t.Fatal(err)
	}
	if err := Executable(uo); !IsUntrusted(err) {
		t.Errorf("user-owned: %v", err)
	}
}
