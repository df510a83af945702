package bundle

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/kerneltest"
)

// TestTreeRefusesPlantedSymlinks is the second wall: even if a symlink got
// into the extraction directory (the index checks make that impossible),
// no later write may follow it, with openat2 or with the O_NOFOLLOW walk.
func TestTreeRefusesPlantedSymlinks(t *testing.T) {
	ops := []struct {
		name string
		do   func(tr *tree) error
	}{
		{"file below a symlink out", func(tr *tree) error { return tr.file("out/pwned", 0o644, strings.NewReader("x")) }},
		{"file below a relative symlink out", func(tr *tree) error { return tr.file("rel/pwned", 0o644, strings.NewReader("x")) }},
		{"file deep below a symlink", func(tr *tree) error { return tr.file("d/out/pwned", 0o644, strings.NewReader("x")) }},
		{"file below a symlink inside", func(tr *tree) error { return tr.file("in/pwned", 0o644, strings.NewReader("x")) }},
		{"file over a symlink", func(tr *tree) error { return tr.file("outfile", 0o644, strings.NewReader("x")) }},
		{"dir below a symlink", func(tr *tree) error { return tr.mkdir("out/newdir") }},
		{"symlink below a symlink", func(tr *tree) error { return tr.symlink("out/newlink", "x") }},
		{"dir over a symlink", func(tr *tree) error { return tr.mkdir("out") }},
		{"dotdot", func(tr *tree) error { return tr.file("d/../../pwned", 0o644, strings.NewReader("x")) }},
	}
	for _, walk := range []bool{false, true} {
		for _, op := range ops {
			name := op.name + "/openat2"
			if walk {
				name = op.name + "/walk"
			}
			t.Run(name, func(t *testing.T) {
				if !walk {
					kerneltest.Require(t, "openat2", probeOpenat2)
				}
				a := newArea(t)
				root := filepath.Join(a.root, "sandbox", "bundles", "tmp")
				outside := filepath.Join(a.root, "outside")
				writeTree(t, root, []node{
					{path: "out", link: outside},
					{path: "rel", link: "../../../outside"},
					{path: "d/out", link: outside},
					{path: "in", link: "d"},
					{path: "outfile", link: filepath.Join(outside, "keep.txt")},
				})
				before := a.snapshot(t)
				tr, err := openTree("test.cortex", root)
				if err != nil {
					t.Fatal(err)
				}
				defer tr.close()
				tr.walk = walk
				err = op.do(tr)
				if err == nil {
					t.Fatal("write through a symlink succeeded")
				}
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("error %v has category %q, want invalid argument", err, errdefs.CategoryOf(err))
				}
				if diff := cmp.Diff(before, a.snapshot(t)); diff != "" {
					t.Errorf("the tree changed (-before +after):\n%s", diff)
				}
				if b, _ := os.ReadFile(filepath.Join(outside, "keep.txt")); string(b) != "keep" {
					t.Errorf("outside/keep.txt = %q", b)
				}
				if tr.walk != walk {
					t.Errorf("tree fell back to walking directories (openat2 refused)")
				}
			})
		}
	}
}

// TestTreeModes checks that modes do not depend on the umask.
func TestTreeModes(t *testing.T) {
	old := umask(0o077)
	defer umask(old)
	root := t.TempDir()
	tr, err := openTree("test.cortex", root)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	if err := tr.mkdir("d"); err != nil {
		t.Fatal(err)
	}
	if err := tr.file("d/x", 0o755, strings.NewReader("#!")); err != nil {
		t.Fatal(err)
	}
	if err := tr.file("d/y", 0o644, strings.NewReader("y")); err != nil {
		t.Fatal(err)
	}
	if err := tr.finish(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"d": "dir 0755", "d/x": "file 0755 #!", "d/y": "file 0644 y"}
	if diff := cmp.Diff(want, listTree(t, root)); diff != "" {
		t.Errorf("tree (-want +got):\n%s", diff)
	}
}

func umask(m int) int { return unix.Umask(m) }

func probeOpenat2() error {
	fd, err := unix.Openat2(unix.AT_FDCWD, ".", &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH})
	if err != nil {
		return err
	}
	return unix.Close(fd)
}
