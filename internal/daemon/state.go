package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/trust"
	"golang.org/x/sys/unix"
)

// Umask is the daemon's: nothing it creates is readable by anyone but
// root unless it says so (the sandbox init resets it to 022 for agents).
const Umask = 0o077

// stateDir is one of the daemon's directories and the mode it keeps.
type stateDir struct {
	path string
	mode os.FileMode
}

// stateDirs lists the daemon's directories. What it keeps is user data
// (manifests with their env values, bundles, what agents wrote, logs,
// LLM state, bus messages), so only root reads it, with three
// exceptions: var/lib/cortex and projects/ may be traversed (not listed)
// so that the owner of a project run from a bundle file reaches its write
// grants under projects/<p>/data/ (each grant 0700, the owner's);
// run/cortex holds the API socket (0660, group cortex); usr/lib/cortex
// holds the shims and SDKs every agent reads.
func stateDirs(p config.Paths) []stateDir {
	lib := func(s string) string { return filepath.Join(p.LibDir, s) }
	return []stateDir{
		{p.LibDir, 0o711},
		{lib("bundles"), 0o700},
		{lib("layers"), 0o700},
		{lib("tmp"), 0o700},
		{lib("projects"), 0o711},
		{lib("bus"), 0o700},
		{lib("llm"), 0o700},
		{lib("auth"), 0o700},
		{lib("audit"), 0o700},
		{lib("ops"), 0o700},
		{p.CacheDir, 0o700},
		{p.LogDir, 0o750},
		{p.RunDir, 0o755},
		{filepath.Join(p.RunDir, "agents"), 0o700},
		{p.ShareDir, 0o755},
	}
}

// prepareState refuses a root under a directory someone other than root
// could change (they could swap the daemon's state, the bundles it binds
// into sandboxes or its config), creates the daemon's directories and
// puts right the modes of an existing installation's state, logging each
// change.
func prepareState(p config.Paths, log *slog.Logger) error {
	for _, d := range []string{filepath.Dir(p.ConfigFile), p.LibDir, p.CacheDir, p.LogDir, p.RunDir, p.ShareDir} {
		if err := trust.Path(d); err != nil {
			return errdefs.WithHint(errdefs.Wrap(errdefs.FailedPrecondition, err),
				"cortexd runs as root: every directory above its own must be owned by root and writable by nobody else (chown root, chmod go-w), or use another --root")
		}
	}
	for _, d := range []string{filepath.Dir(p.ConfigFile), p.PluginsDir, p.HooksDir} {
		if err := mkdirMode(d, 0o755, false, log); err != nil {
			return err
		}
	}
	for _, d := range stateDirs(p) {
		if err := mkdirMode(d.path, d.mode, true, log); err != nil {
			return err
		}
	}
	repair := func(path string, mode os.FileMode) {
		if err := chmodNoFollow(path, mode, log); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Warn("repair mode", "path", path, "err", err)
		}
	}
	for _, f := range []string{"state.db", "state.db-wal", "state.db-shm", "state.db-journal"} {
		repair(filepath.Join(p.LibDir, f), 0o600)
	}
	repair(filepath.Join(p.LogDir, "cortexd.log"), 0o600)
	stripOther(p.LogDir, log)
	return nil
}

// mkdirMode makes dir (and missing parents, 0755) with mode; with repair,
// an existing dir whose mode differs is put right and the change logged.
func mkdirMode(dir string, mode os.FileMode, repair bool, log *slog.Logger) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if parent := filepath.Dir(dir); parent != dir {
			if err := mkdirMode(parent, 0o755, false, log); err != nil {
				return err
			}
		}
		if err := os.Mkdir(dir, mode); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: %w", dir, err)
		}
		return os.Chmod(dir, mode) // whatever the umask
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return errdefs.New(errdefs.FailedPrecondition, "%s is not a directory", dir)
	}
	if repair {
		return chmodNoFollow(dir, mode, log)
	}
	return nil
}

// chmodNoFollow sets path's permission bits to mode when they differ,
// through a descriptor opened without following a symlink, and logs the
// change. Sockets, FIFOs and devices are left alone.
func chmodNoFollow(path string, mode os.FileMode, log *slog.Logger) error {
	return chmodWith(path, func(os.FileMode) os.FileMode { return mode }, log)
}

// chmodWith is chmodNoFollow with the new mode computed from the old
// (permission, set-id and sticky bits).
func chmodWith(path string, mode func(old os.FileMode) os.FileMode, log *slog.Logger) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENXIO) {
			return nil
		}
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFREG && t != unix.S_IFDIR {
		return nil
	}
	old := os.FileMode(st.Mode & 0o7777)
	want := mode(old)
	if old == want {
		return nil
	}
	if err := unix.Fchmod(fd, uint32(want)); err != nil {
		return &os.PathError{Op: "chmod", Path: path, Err: err}
	}
	log.Warn("repaired mode", "path", path, "old", fmt.Sprintf("%04o", old), "new", fmt.Sprintf("%04o", want))
	return nil
}

func withoutBits(bits os.FileMode) func(os.FileMode) os.FileMode {
	return func(old os.FileMode) os.FileMode { return old &^ bits }
}

// stripOther takes every right of "other" users from what is under dir
// (not following symlinks).
func stripOther(dir string, log *slog.Logger) {
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		if fi, err := e.Info(); err == nil && fi.Mode().Perm()&0o007 != 0 {
			_ = chmodWith(p, withoutBits(0o007), log)
		}
		return nil
	})
}

// repairProjects puts right the data directories of an existing
// installation (projects/<p>/data, where the write grants of projects
// run from a bundle file live): projects/<p> and data are traversable
// only; in data, the directories root made on the way to a nested grant
// of another user's project are traversable only, and everything else (the
// grant directories, the owner's) is closed to everyone but its owner.
// It never descends into a grant directory. owners maps each known
// project to its owner's uid.
func repairProjects(dir string, owners map[string]int, log *slog.Logger) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		proj := filepath.Join(dir, e.Name())
		if !e.IsDir() {
			_ = chmodWith(proj, withoutBits(0o077), log)
			continue
		}
		_ = chmodNoFollow(proj, 0o711, log)
		data := filepath.Join(proj, "data")
		if fi, err := os.Lstat(data); err != nil || !fi.IsDir() {
			continue
		}
		_ = chmodNoFollow(data, 0o711, log)
		owner, known := owners[e.Name()]
		var walk func(d string, depth int)
		walk = func(d string, depth int) {
			ents, err := os.ReadDir(d)
			if err != nil {
				return
			}
			for _, e := range ents {
				p := filepath.Join(d, e.Name())
				fi, err := os.Lstat(p)
				if err != nil || fi.Mode()&os.ModeSymlink != 0 {
					continue
				}
				st := fi.Sys().(*syscall.Stat_t)
				if fi.IsDir() && known && owner != 0 && st.Uid == 0 && depth < 16 {
					_ = chmodNoFollow(p, 0o711, log)
					walk(p, depth+1)
					continue
				}
				_ = chmodWith(p, withoutBits(0o077), log)
			}
		}
		walk(data, 0)
	}
}

// shareReadable makes the shims and SDKs readable by every agent uid
// (they are written under the daemon's umask): directories 0755, files
// 0644. The binaries cortex-ops update installs (versions/) keep theirs.
func shareReadable(dir string, log *slog.Logger) {
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		if e.IsDir() && p == filepath.Join(dir, "versions") {
			return filepath.SkipDir
		}
		mode := os.FileMode(0o644)
		if e.IsDir() {
			mode = 0o755
		}
		if fi, err := e.Info(); err == nil && fi.Mode().Perm() != mode {
			if err := chmodNoFollow(p, mode, slog.New(slog.DiscardHandler)); err != nil {
				log.Warn("make shared file readable", "path", p, "err", err)
			}
		}
		return nil
	})
}
