//go:build !linux

package bundle

import (
	"fmt"
	"io"
	"io/fs"
	"os"
)

// forceWalk only matters on Linux.
var forceWalk = false

// tree writes entries through an os.Root, which refuses any path that
// would resolve outside the directory. Linux uses openat2 instead, which
// also refuses symlinks inside it; the daemon only runs on Linux.
type tree struct {
	name string
	root *os.Root
}

var _ sink = (*tree)(nil)

func openTree(name, dir string) (*tree, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: extract: %w", name, err)
	}
	return &tree{name: name, root: r}, nil
}

func (t *tree) close() { t.root.Close() }

func (t *tree) finish() error {
	if err := t.root.Chmod(".", 0o755); err != nil {
		return fmt.Errorf("bundle %s: extract: %w", t.name, err)
	}
	return nil
}

func (t *tree) mkdir(p string) error {
	if err := t.root.Mkdir(p, 0o755); err != nil {
		return fmt.Errorf("bundle %s: extract %q: %w", t.name, p, err)
	}
	if err := t.root.Chmod(p, 0o755); err != nil {
		return fmt.Errorf("bundle %s: extract %q: %w", t.name, p, err)
	}
	return nil
}

func (t *tree) symlink(p, target string) error {
	if err := t.root.Symlink(target, p); err != nil {
		return fmt.Errorf("bundle %s: extract %q: %w", t.name, p, err)
	}
	return nil
}

func (t *tree) file(p string, mode fs.FileMode, r io.Reader) error {
	f, err := t.root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("bundle %s: extract %q: %w", t.name, p, err)
	}
	defer f.Close()
	if _, err := io.Copy(struct{ io.Writer }{f}, r); err != nil {
		return fmt.Errorf("bundle %s: extract %q: %w", t.name, p, err)
	}
	if err := f.Chmod(mode.Perm()); err != nil {
		return fmt.Errorf("bundle %s: extract %q: %w", t.name, p, err)
	}
	return f.Close()
}

// renameDir renames the directory old to new, replacing new if it is an
// empty directory.
func renameDir(old, new string) error {
	os.Remove(new) // only succeeds while empty
	return os.Rename(old, new)
}
