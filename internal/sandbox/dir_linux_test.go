package sandbox

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cortexrt/cortex/internal/kerneltest"
	"golang.org/x/sys/unix"
)

// mkTree makes dirs (and files, "path=content") under a new temp dir.
func mkTree(t *testing.T, entries ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, e := range entries {
		name, content, isFile := strings.Cut(e, "=")
		p := filepath.Join(root, name)
		if !isFile {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestOpenDirNoFollow(t *testing.T) {
	root := mkTree(t, "a/b/c", "f=x")
	symlink(t, filepath.Join(root, "a"), filepath.Join(root, "link"))
	d, err := OpenDirNoFollow(filepath.Join(root, "a", "b", "c"))
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(root, "a", "b", "c"), &st); err != nil {
		t.Fatal(err)
	}
	if d.ID.Ino != st.Ino || d.ID.Dev != st.Dev || d.ID.UID != int(st.Uid) {
		t.Errorf("identity %+v, stat dev %d ino %d uid %d", d.ID, st.Dev, st.Ino, st.Uid)
	}
	d.Close()
	for _, tc := range []struct{ path, want string }{
		{"link", "link is a symlink (to " + filepath.Join(root, "a") + ")"},
		{"link/b/c", "link is a symlink"},
		{"a/missing", "a/missing does not exist"},
		{"f", "f is not a directory"},
	} {
		_, err := OpenDirNoFollow(filepath.Join(root, tc.path))
		var changed *DirChangedError
		if !errors.As(err, &changed) || !strings.Contains(err.Error(), filepath.Join(root, tc.want)) {
			t.Errorf("%s: %v, want a DirChangedError saying %q", tc.path, err, filepath.Join(root, tc.want))
		}
	}
	if _, err := OpenDirNoFollow("rel/path"); err == nil {
		t.Error("a relative path was opened")
	}
}

// TestOpenDirCanonical: the path a caller names once is opened through
// its symlinks and recorded under its real path.
func TestOpenDirCanonical(t *testing.T) {
	root := mkTree(t, "real/proj")
	symlink(t, "real", filepath.Join(root, "via"))
	d, err := OpenDirCanonical(filepath.Join(root, "via", "proj"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	realRoot, _ := filepath.EvalSymlinks(root)
	if want := filepath.Join(realRoot, "real", "proj"); d.Path != want {
		t.Errorf("path %s, want %s", d.Path, want)
	}
	v, err := VerifyDir(d.Path, d.ID)
	if err != nil {
		t.Fatalf("the canonical path does not verify: %v", err)
	}
	v.Close()
}

func TestVerifyDir(t *testing.T) {
	root := mkTree(t, "proj", "other")
	proj := filepath.Join(root, "proj")
	d, err := OpenDirNoFollow(proj)
	if err != nil {
		t.Fatal(err)
	}
	id := d.ID
	d.Close()
	if id.MntID == 0 || id.BootID == "" {
		t.Logf("this kernel gives no mount id (statx STATX_MNT_ID, Linux 5.8): %+v", id)
	}

	d, err = VerifyDir(proj, id)
	if err != nil {
		t.Fatalf("unchanged directory: %v", err)
	}
	d.Close()

	check := func(name, want string) {
		t.Helper()
		_, err := VerifyDir(proj, id)
		var changed *DirChangedError
		if !errors.As(err, &changed) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
	}
	// Owner: the same directory, given away.
	if os.Geteuid() == 0 {
		if err := os.Chown(proj, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		check("chown", "its owner changed from uid 0 to uid 65534")
		if err := os.Chown(proj, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	// A mount id from another boot is not compared.
	other := id
	other.MntID, other.BootID = id.MntID+1, "another-boot"
	if d, err := VerifyDir(proj, other); err != nil {
		t.Errorf("mount id of another boot compared: %v", err)
	} else {
		d.Close()
	}
	// Replaced by another directory; then by a symlink to the original.
	if err := os.Rename(proj, proj+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "other"), proj); err != nil {
		t.Fatal(err)
	}
	check("replaced", "it is another directory now")
	if err := os.Rename(proj, filepath.Join(root, "other")); err != nil {
		t.Fatal(err)
	}
	symlink(t, "proj.old", proj)
	check("symlink", proj+" is a symlink (to proj.old)")
}

// TestVerifyDirBindMount: a bind mount over the directory is seen, also
// of the very same directory (only the mount differs).
func TestVerifyDirBindMount(t *testing.T) {
	kerneltest.RequireRoot(t)
	root := mkTree(t, "proj", "vault")
	proj := filepath.Join(root, "proj")
	d, err := OpenDirNoFollow(proj)
	if err != nil {
		t.Fatal(err)
	}
	id := d.ID
	d.Close()
	if id.MntID == 0 {
		kerneltest.Missing(t, "statx gives no mount id (STATX_MNT_ID, Linux 5.8)")
	}
	for _, tc := range []struct{ src, want string }{
		{filepath.Join(root, "vault"), "it is another directory now"},
		{proj, "it is reached through another mount now"},
	} {
		if err := unix.Mount(tc.src, proj, "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		_, err := VerifyDir(proj, id)
		if err := unix.Unmount(proj, unix.MNT_DETACH); err != nil {
			t.Fatal(err)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("bind %s over the project: %v, want %q", tc.src, err, tc.want)
		}
	}
}

func TestOpenBeneath(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		name := "openat2"
		if fallback {
			name = "no-openat2"
		}
		t.Run(name, func(t *testing.T) {
			if fallback {
				openat2Missing.Store(true)
				defer openat2Missing.Store(false)
			}
			outside := mkTree(t, "secret")
			root := mkTree(t, "proj/data/sub", "proj/other")
			proj := filepath.Join(root, "proj")
			symlink(t, "../other", filepath.Join(proj, "data", "up"))                    // stays inside
			symlink(t, filepath.Join(outside, "secret"), filepath.Join(proj, "abs"))     // absolute: out
			symlink(t, "../../"+filepath.Base(root), filepath.Join(proj, "data", "out")) // climbs out
			symlink(t, filepath.Join(proj, "other"), filepath.Join(proj, "absin"))       // absolute, inside
			d, err := OpenDir(proj)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			for _, tc := range []struct {
				rel  string
				want string // "" = opens, else the error's kind
			}{
				{"data/sub", ""},
				{".", ""},
				{"data/up", "outside"}, // the fallback refuses every symlink
				{"abs", "outside"},
				{"absin", "outside"},
				{"data/out", "outside"},
				{"..", "outside"},
				{"data/../..", "outside"},
				{"missing", "notexist"},
			} {
				want := tc.want
				if tc.rel == "data/up" && !fallback {
					want = ""
				}
				got, err := d.OpenBeneath(tc.rel)
				switch {
				case want == "" && err != nil:
					t.Errorf("%s: %v", tc.rel, err)
				case want == "outside" && !errors.Is(err, ErrOutside):
					t.Errorf("%s: %v, want ErrOutside", tc.rel, err)
				case want == "notexist" && !errors.Is(err, fs.ErrNotExist):
					t.Errorf("%s: %v, want not exist", tc.rel, err)
				}
				if err == nil {
					got.Close()
				}
			}
			up, err := d.OpenBeneath("data/up")
			if err == nil {
				defer up.Close()
				var st unix.Stat_t
				_ = unix.Stat(filepath.Join(proj, "other"), &st)
				if up.ID.Ino != st.Ino {
					t.Errorf("data/up opened inode %d, want other's %d", up.ID.Ino, st.Ino)
				}
			}
		})
	}
}

func TestMkdirBeneath(t *testing.T) {
	old := unix.Umask(0o077) // the daemon's: modes must not depend on it
	defer unix.Umask(old)
	outside := mkTree(t, "target")
	root := mkTree(t, "proj/in")
	proj := filepath.Join(root, "proj")
	symlink(t, "in", filepath.Join(proj, "alias"))
	symlink(t, filepath.Join(outside, "target"), filepath.Join(proj, "evil"))
	d, err := OpenDir(proj)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	uid, gid := os.Getuid(), os.Getgid()
	if os.Geteuid() == 0 {
		uid, gid = 65534, 65534
	}

	g, created, err := d.MkdirBeneath("a/b/c", 0o711, 0o700, uid, gid)
	if err != nil || !created {
		t.Fatalf("a/b/c: created %v, %v", created, err)
	}
	g.Close()
	for p, want := range map[string]struct {
		mode os.FileMode
		uid  int
	}{"a": {0o711, os.Geteuid()}, "a/b": {0o711, os.Geteuid()}, "a/b/c": {0o700, uid}} {
		fi, err := os.Stat(filepath.Join(proj, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want.mode || int(fi.Sys().(*syscall.Stat_t).Uid) != want.uid {
			t.Errorf("%s: %v uid %d, want %v uid %d", p, fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Uid, want.mode, want.uid)
		}
	}
	// Again: it exists, nothing is made or chowned.
	g, created, err = d.MkdirBeneath("a/b/c", 0o711, 0o700, 0, 0)
	if err != nil || created {
		t.Fatalf("existing a/b/c: created %v, %v", created, err)
	}
	g.Close()
	// Through a symlink that stays inside: made where it leads.
	g, _, err = d.MkdirBeneath("alias/new", 0o755, 0o755, uid, gid)
	if err != nil {
		t.Fatalf("alias/new: %v", err)
	}
	g.Close()
	if _, err := os.Stat(filepath.Join(proj, "in", "new")); err != nil {
		t.Errorf("alias/new not made at in/new: %v", err)
	}
	// Through a symlink out of the project: refused, nothing made there.
	if _, _, err := d.MkdirBeneath("evil/planted", 0o755, 0o755, uid, gid); !errors.Is(err, ErrOutside) {
		t.Errorf("evil/planted: %v, want ErrOutside", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(outside, "target")); len(ents) != 0 {
		t.Errorf("made %v outside the project", ents)
	}
	if _, _, err := d.MkdirBeneath("../x", 0o755, 0o755, uid, gid); !errors.Is(err, ErrOutside) {
		t.Errorf("../x: %v, want ErrOutside", err)
	}
}

// TestCloneTree: the detached mount shows the directory that was opened,
// whatever its path leads to afterwards.
func TestCloneTree(t *testing.T) {
	kerneltest.RequireRoot(t)
	root := mkTree(t, "proj/pub/marker=original", "vault/pub/marker=vault")
	proj := filepath.Join(root, "proj")
	d, err := OpenDir(proj)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := d.OpenBeneath("pub")
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	tree, err := CloneTree(pub, true)
	pub.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	if err := os.Rename(proj, proj+".old"); err != nil {
		t.Fatal(err)
	}
	symlink(t, filepath.Join(root, "vault"), proj)
	fd, err := unix.Openat(int(tree.Fd()), "marker", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "marker")
	defer f.Close()
	b := make([]byte, 64)
	n, _ := f.Read(b)
	if got := string(b[:n]); got != "original" {
		t.Errorf("the detached mount shows %q, want the directory opened (original)", got)
	}
}
