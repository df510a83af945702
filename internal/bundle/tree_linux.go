package bundle

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// forceWalk makes tree skip openat2 and walk directories one component at
// a time with O_NOFOLLOW, as on kernels before 5.6; tests set it to cover
// both paths.
var forceWalk = false

// tree writes entries below a directory descriptor. No path is ever
// resolved through a symlink: parent directories are opened with
// openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS|
// RESOLVE_NO_XDEV) (or, without openat2, one O_NOFOLLOW|O_DIRECTORY openat
// per component), and the final component is created with mkdirat,
// symlinkat or openat(O_CREAT|O_EXCL|O_NOFOLLOW), which never follow a
// symlink and never reuse an existing name.
type tree struct {
	name    string // bundle, for errors
	root    int
	walk    bool
	dirPath string // the cached parent directory
	dirFD   int
	buf     []byte
}

var _ sink = (*tree)(nil)

func openTree(name, dir string) (*tree, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: extract: open %s: %w", name, dir, err)
	}
	return &tree{name: name, root: fd, walk: forceWalk, dirFD: -1, buf: make([]byte, 256<<10)}, nil
}

func (t *tree) close() {
	if t.dirFD >= 0 {
		unix.Close(t.dirFD)
		t.dirFD = -1
	}
	if t.root >= 0 {
		unix.Close(t.root)
		t.root = -1
	}
}

// finish sets the root's mode and flushes the filesystem, so a tree that
// is renamed into place is complete on disk.
func (t *tree) finish() error {
	if err := unix.Fchmod(t.root, 0o755); err != nil {
		return fmt.Errorf("bundle %s: extract: chmod root: %w", t.name, err)
	}
	if err := unix.Syncfs(t.root); err != nil {
		return fmt.Errorf("bundle %s: extract: sync: %w", t.name, err)
	}
	return nil
}

// parent returns a descriptor of p's directory (owned by t) and p's name.
func (t *tree) parent(p string) (int, string, error) {
	dir, base := splitPath(p)
	if dir == "" {
		return t.root, base, nil
	}
	if dir == t.dirPath && t.dirFD >= 0 {
		return t.dirFD, base, nil
	}
	fd, err := t.openDir(dir)
	if err != nil {
		return -1, "", t.err(p, "open its directory", err)
	}
	if t.dirFD >= 0 {
		unix.Close(t.dirFD)
	}
	t.dirPath, t.dirFD = dir, fd
	return fd, base, nil
}

func (t *tree) openDir(dir string) (int, error) {
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	if !t.walk {
		how := unix.OpenHow{
			Flags:   flags,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
		}
		for tries := 0; ; tries++ {
			fd, err := unix.Openat2(t.root, dir, &how)
			if err == unix.EAGAIN && tries < 16 {
				continue
			}
			if err == unix.ENOSYS || err == unix.EPERM {
				// No openat2 (old kernel, or a seccomp profile that
				// refuses it): walk instead, equally strict.
				t.walk = true
				break
			}
			return fd, err
		}
	}
	fd := t.root
	for c := range strings.SplitSeq(dir, "/") {
		if c == "" || c == "." || c == ".." {
			// What openat2's RESOLVE_BENEATH answers for an escape.
			if fd != t.root {
				unix.Close(fd)
			}
			return -1, unix.EXDEV
		}
		nfd, err := unix.Openat(fd, c, flags, 0)
		if fd != t.root {
			unix.Close(fd)
		}
		if err != nil {
			return -1, err
		}
		fd = nfd
	}
	return fd, nil
}

func (t *tree) mkdir(p string) error {
	pfd, base, err := t.parent(p)
	if err != nil {
		return err
	}
	if err := unix.Mkdirat(pfd, base, 0o755); err != nil {
		return t.err(p, "create directory", err)
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return t.err(p, "open directory", err)
	}
	defer unix.Close(fd)
	if err := unix.Fchmod(fd, 0o755); err != nil {
		return t.err(p, "chmod directory", err)
	}
	return nil
}

func (t *tree) symlink(p, target string) error {
	pfd, base, err := t.parent(p)
	if err != nil {
		return err
	}
	if err := unix.Symlinkat(target, pfd, base); err != nil {
		return t.err(p, "create symlink", err)
	}
	return nil
}

func (t *tree) file(p string, mode fs.FileMode, r io.Reader) error {
	pfd, base, err := t.parent(p)
	if err != nil {
		return err
	}
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return t.err(p, "create file", err)
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	// Only Write: keep io.Copy from handing r to f.ReadFrom.
	if _, err := io.CopyBuffer(struct{ io.Writer }{f}, r, t.buf); err != nil {
		return fmt.Errorf("bundle %s: extract %q: %w", t.name, p, err)
	}
	if err := f.Chmod(mode.Perm()); err != nil {
		return t.err(p, "chmod file", err)
	}
	if err := f.Close(); err != nil {
		return t.err(p, "write file", err)
	}
	return nil
}

// err reports a failed operation on entry p. Errors that only a hostile
// tree can cause (a symlink or an existing name on the way) are
// InvalidArgument; the checks before should have refused the bundle.
func (t *tree) err(p, op string, err error) error {
	switch {
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV), errors.Is(err, unix.ENOTDIR):
		return entryErr(t.name, p, "%s: %v: the path goes through a symlink or leaves the bundle; refusing to follow it", op, err)
	case errors.Is(err, unix.EEXIST):
		return entryErr(t.name, p, "%s: already exists; the bundle holds it twice", op)
	}
	return fmt.Errorf("bundle %s: extract %q: %s: %w", t.name, p, op, err)
}

// renameDir renames the directory old to new, replacing new if it is an
// empty directory (os.Rename refuses any existing directory).
func renameDir(old, new string) error {
	if err := unix.Rename(old, new); err != nil {
		return &os.LinkError{Op: "rename", Old: old, New: new, Err: err}
	}
	return nil
}
