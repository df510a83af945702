package bundle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// Extract unpacks the bundle into dest, which must not exist or be an empty
// directory, and whose parent must exist. Every entry is checked against
// the index as it streams (see Open and the package comment), every file's
// SHA-256 verified, and lim enforced (zero fields take DefaultLimits) before
// anything is written and again while decompressing.
//
// The tree is built in a temporary directory beside dest, named
// ".<base of dest>.extract-*", synced and renamed to dest once everything
// verified. On any error the temporary directory is removed, dest does not
// remain (an empty dest given by the caller is removed too) and nothing was
// written outside dest; the error for a bad bundle is InvalidArgument and
// names the entry. If dest is not empty, or became non-empty meanwhile (a
// concurrent Extract of the same bundle), the error is AlreadyExists and
// dest is left alone.
//
// Files get mode 0644 or 0755, directories 0755, whatever the umask; they
// belong to the calling user (root, in the daemon). progress, when set, is
// called with the content bytes extracted so far and the total.
func (b *Bundle) Extract(ctx context.Context, dest string, lim Limits, progress func(done, total int64)) error {
	return b.ExtractWith(ctx, dest, ExtractOptions{Limits: lim, Progress: progress})
}

// ExtractWith is Extract with options: with opts.Layers, the bundle's
// layers go to the host's layer store (see ExtractOptions).
func (b *Bundle) ExtractWith(ctx context.Context, dest string, opts ExtractOptions) error {
	dest = filepath.Clean(dest)
	existed, err := checkDest(dest)
	if err != nil {
		return err
	}
	if err := b.extract(ctx, dest, opts.Limits.withDefaults(), opts.Progress, opts.Layers); err != nil {
		if existed && !errdefs.IsAlreadyExists(err) {
			// Only succeeds while empty: never removes anyone's data.
			os.Remove(dest)
		}
		return err
	}
	syncDir(filepath.Dir(dest))
	return nil
}

// extract builds the tree beside dest and renames it into place.
func (b *Bundle) extract(ctx context.Context, dest string, lim Limits, progress func(done, total int64), layers string) error {
	if err := b.checkLimits(lim); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".extract-")
	if err != nil {
		return fmt.Errorf("bundle %s: extract: %w", b.name, err)
	}
	err = b.extractTo(ctx, tmp, lim, progress, layers)
	if err == nil {
		err = renameDir(tmp, dest)
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			err = errdefs.New(errdefs.AlreadyExists, "bundle %s: extract: %s is not empty (extracted meanwhile by someone else?)", b.name, dest)
		} else if err != nil {
			err = fmt.Errorf("bundle %s: extract: %w", b.name, err)
		}
	}
	if err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return nil
}

func (b *Bundle) extractTo(ctx context.Context, dir string, lim Limits, progress func(done, total int64), layers string) error {
	t, err := openTree(b.name, dir)
	if err != nil {
		return err
	}
	defer t.close()
	if layers == "" {
		if err := b.stream(ctx, lim, progress, t); err != nil {
			return err
		}
		return t.finish()
	}
	ls := &layeredSink{name: b.name, proj: t, store: layers, layers: map[string]*layerOut{}}
	if err := b.stream(ctx, lim, progress, ls); err != nil {
		ls.abort()
		return err
	}
	if err := t.finish(); err != nil {
		ls.abort()
		return err
	}
	if err := ls.finish(); err != nil {
		ls.abort()
		return err
	}
	return nil
}

// checkDest reports whether dest exists as an empty directory, and refuses
// anything else but a missing dest in an existing directory.
func checkDest(dest string) (existed bool, err error) {
	st, err := os.Lstat(dest)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		pst, perr := os.Stat(filepath.Dir(dest))
		if perr != nil {
			return false, errdefs.Wrap(categoryOf(perr), fmt.Errorf("bundle extract: destination parent: %w", perr))
		}
		if !pst.IsDir() {
			return false, errdefs.New(errdefs.InvalidArgument, "bundle extract: %s is not a directory", filepath.Dir(dest))
		}
		return false, nil
	case err != nil:
		return false, fmt.Errorf("bundle extract: %w", err)
	case !st.IsDir():
		return false, errdefs.New(errdefs.InvalidArgument, "bundle extract: destination %s exists and is not a directory", dest)
	}
	f, err := os.Open(dest)
	if err != nil {
		return false, fmt.Errorf("bundle extract: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if len(names) > 0 {
		return false, errdefs.New(errdefs.AlreadyExists, "bundle extract: destination %s is not empty", dest)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("bundle extract: %w", err)
	}
	return true, nil
}

func syncDir(dir string) {
	f, err := os.Open(dir)
	if err != nil {
		return
	}
	f.Sync() // best effort: not every filesystem syncs directories
	f.Close()
}
