// Package trust decides whether root may execute or read a path as
// configuration: a hook, a plugin, a config directory, the daemon's state
// root. A trusted path is owned by root (or by the process's own uid) and
// writable by nobody else, and so is every directory above it up to "/"
// and every target of a symlink on the way; otherwise an unprivileged
// user could swap what root runs. It does no I/O beyond lstat and
// readlink, and it never changes anything.
package trust

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Error is a refusal: Path is the component at fault.
type Error struct {
	Path   string
	Reason string
}

func (e *Error) Error() string { return e.Path + " " + e.Reason }

// IsUntrusted reports whether err is (or wraps) a refusal, as opposed to
// an I/O error while checking.
func IsUntrusted(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// Path checks every component of path, and of the targets of symlinks on
// it, from "/": each must be owned by root (or the caller's euid) and
// writable by nobody else, unless it is a sticky directory (like /tmp,
// where others cannot replace root's entries; the next component is
// checked in turn). Components that do not exist yet are fine (the caller
// makes them); use Executable for a file that must exist.
func Path(path string) error { return checkPath(path, 0) }

// Executable is Path for a file root is about to run: it must also exist,
// be a regular file (after symlinks) and have an execute bit.
func Executable(path string) error {
	if err := Path(path); err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return &Error{Path: path, Reason: "is not a regular file"}
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not executable (chmod 0755)", path)
	}
	return nil
}

func checkPath(path string, depth int) error {
	if depth > 40 {
		return fmt.Errorf("%s: too many levels of symlinks", path)
	}
	path = filepath.Clean(path)
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%s: not an absolute path", path)
	}
	cur := "/"
	fi, err := os.Lstat(cur)
	if err != nil {
		return err
	}
	if err := check(cur, fi); err != nil {
		return err
	}
	for _, part := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		if part == "" {
			continue
		}
		next := filepath.Join(cur, part)
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := check(next, fi); err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(next)
			if err != nil {
				return err
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(cur, target)
			}
			if err := checkPath(target, depth+1); err != nil {
				return fmt.Errorf("%w (through the symlink %s)", err, next)
			}
			if next, err = filepath.EvalSymlinks(next); err != nil {
				return err
			}
		}
		cur = next
	}
	return nil
}

// check is one component's rule.
func check(p string, fi os.FileInfo) error {
	uid, gid, ok := owner(fi)
	if !ok {
		return nil // no uid model on this platform
	}
	if uid != 0 && uid != os.Geteuid() {
		return &Error{Path: p, Reason: fmt.Sprintf("is owned by uid %d, not root", uid)}
	}
	sticky := fi.Mode()&os.ModeSticky != 0
	if fi.Mode()&os.ModeSymlink == 0 && !sticky {
		if fi.Mode().Perm()&0o002 != 0 {
			return &Error{Path: p, Reason: "is writable by every user"}
		}
		if fi.Mode().Perm()&0o020 != 0 && gid != 0 {
			return &Error{Path: p, Reason: fmt.Sprintf("is writable by group %d", gid)}
		}
	}
	return nil
}
