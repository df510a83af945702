package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// DirIdentity is what identifies a directory across daemon restarts: the
// device and inode it is, the uid that owns it, and the mount it was
// reached through (so a bind mount over its path is noticed, even of the
// same directory). Mount ids are only comparable within one boot, so the
// boot id is kept with them.
type DirIdentity struct {
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
	UID    int    `json:"uid"`
	MntID  uint64 `json:"mnt_id,omitempty"`
	BootID string `json:"boot_id,omitempty"`
}

// IsZero reports whether nothing was recorded.
func (id DirIdentity) IsZero() bool { return id.Dev == 0 && id.Ino == 0 }

func (id DirIdentity) String() string {
	s := fmt.Sprintf("device %d:%d, inode %d, owner uid %d", unix.Major(id.Dev), unix.Minor(id.Dev), id.Ino, id.UID)
	if id.MntID != 0 {
		s += fmt.Sprintf(", mount %d", id.MntID)
	}
	return s
}

// Dir is an open directory (an O_PATH descriptor) and what it was when
// opened. Everything the daemon creates, chowns or binds under a
// project's directory goes through a Dir whose identity it checked.
type Dir struct {
	f    *os.File
	Path string
	ID   DirIdentity
}

// Fd is the directory's descriptor.
func (d *Dir) Fd() int { return int(d.f.Fd()) }

// Close closes the descriptor.
func (d *Dir) Close() error {
	if d == nil || d.f == nil {
		return nil
	}
	return d.f.Close()
}

// DirChangedError says why a directory is not the one recorded.
type DirChangedError struct {
	Path   string
	Reason string
}

func (e *DirChangedError) Error() string {
	if strings.HasPrefix(e.Reason, e.Path+" ") {
		return e.Reason
	}
	return e.Path + ": " + e.Reason
}

// OpenDirNoFollow opens the absolute path one component at a time from
// "/", with O_NOFOLLOW: a symlink anywhere on the path is refused (a
// *DirChangedError naming it).
func OpenDirNoFollow(path string) (*Dir, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%s: not an absolute path", path)
	}
	path = filepath.Clean(path)
	fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /: %w", err)
	}
	cur := "/"
	for _, part := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		if part == "" {
			continue
		}
		next := filepath.Join(cur, part)
		nfd, err := unix.Openat(fd, part, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			var st unix.Stat_t
			if errors.Is(err, unix.ENOTDIR) && unix.Fstatat(fd, part, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				target, _ := readlinkat(fd, part)
				unix.Close(fd)
				return nil, &DirChangedError{Path: path, Reason: fmt.Sprintf("%s is a symlink (to %s); no component of the path may be a symlink", next, target)}
			}
			unix.Close(fd)
			if errors.Is(err, unix.ENOENT) {
				return nil, &DirChangedError{Path: path, Reason: fmt.Sprintf("%s does not exist", next)}
			}
			if errors.Is(err, unix.ENOTDIR) {
				return nil, &DirChangedError{Path: path, Reason: fmt.Sprintf("%s is not a directory", next)}
			}
			return nil, fmt.Errorf("open %s: %w", next, err)
		}
		unix.Close(fd)
		fd, cur = nfd, next
	}
	return newDir(fd, path)
}

// OpenDirCanonical opens path once, following symlinks (the path a caller
// names when it creates a project), and returns it under its symlink-free
// path, reopened with OpenDirNoFollow and checked to be the same
// directory: the path and identity to record for later starts.
func OpenDirCanonical(path string) (*Dir, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%s: not an absolute path", path)
	}
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	first, err := newDir(fd, path)
	if err != nil {
		return nil, err
	}
	defer first.Close()
	canon, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil || !filepath.IsAbs(canon) {
		return nil, fmt.Errorf("%s: cannot tell its path (%v)", path, err)
	}
	d, err := OpenDirNoFollow(canon)
	if err != nil {
		return nil, err
	}
	if d.ID != first.ID {
		d.Close()
		return nil, &DirChangedError{Path: path, Reason: fmt.Sprintf("changed while it was opened (%s, then %s at %s)", first.ID, d.ID, canon)}
	}
	return d, nil
}

// VerifyDir opens path with OpenDirNoFollow and checks that it is the
// directory want describes (the mount only when both were seen in this
// boot). The error is a *DirChangedError saying what changed.
func VerifyDir(path string, want DirIdentity) (*Dir, error) {
	d, err := OpenDirNoFollow(path)
	if err != nil {
		return nil, err
	}
	got := d.ID
	var why string
	switch {
	case got.Dev != want.Dev || got.Ino != want.Ino:
		why = fmt.Sprintf("it is another directory now (was %s; now %s)", want, got)
	case got.UID != want.UID:
		why = fmt.Sprintf("its owner changed from uid %d to uid %d", want.UID, got.UID)
	case want.MntID != 0 && got.MntID != 0 && want.BootID == got.BootID && got.MntID != want.MntID:
		why = fmt.Sprintf("it is reached through another mount now (mount %d, was %d): something was mounted over it or over a directory above it", got.MntID, want.MntID)
	}
	if why != "" {
		d.Close()
		return nil, &DirChangedError{Path: path, Reason: why}
	}
	return d, nil
}

// OpenDir opens a directory the daemon owns (its bundle and data
// directories: their paths are the daemon's, not a caller's), refusing a
// symlink as the last component.
func OpenDir(path string) (*Dir, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return newDir(fd, path)
}

func newDir(fd int, path string) (*Dir, error) {
	id, err := identify(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	return &Dir{f: os.NewFile(uintptr(fd), path), Path: path, ID: id}, nil
}

func identify(fd int) (DirIdentity, error) {
	var stx unix.Statx_t
	// The unique mount id (6.8) is never reused within a boot; older
	// kernels ignore the bit and fill the reusable one (5.8).
	mask := unix.STATX_BASIC_STATS | unix.STATX_MNT_ID | unix.STATX_MNT_ID_UNIQUE
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, mask, &stx); err != nil {
		return DirIdentity{}, err
	}
	id := DirIdentity{
		Dev: unix.Mkdev(stx.Dev_major, stx.Dev_minor),
		Ino: stx.Ino,
		UID: int(stx.Uid),
	}
	if stx.Mask&(unix.STATX_MNT_ID|unix.STATX_MNT_ID_UNIQUE) != 0 {
		id.MntID = stx.Mnt_id
		id.BootID = bootID()
	}
	return id, nil
}

var bootIDOnce = sync.OnceValue(func() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
})

func bootID() string { return bootIDOnce() }

func readlinkat(dirfd int, name string) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dirfd, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// ErrOutside is returned (wrapped) when a path beneath a Dir leads out of it.
var ErrOutside = errors.New("resolves outside the project directory")

// openat2Missing is set when the kernel lacks openat2 (before 5.6), and
// by tests of the fallback.
var openat2Missing atomic.Bool

// OpenBeneath opens the directory rel (relative, cleaned) beneath d.
// Symlinks on the way may lead elsewhere beneath d, never out of it:
// openat2 with RESOLVE_BENEATH, which also refuses absolute symlinks and
// /proc magic links. Kernels without openat2 get a walk that refuses
// every symlink. A path that leads out wraps ErrOutside.
func (d *Dir) OpenBeneath(rel string) (*Dir, error) {
	rel = filepath.Clean(rel)
	if filepath.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
		return nil, ErrOutside
	}
	if !openat2Missing.Load() {
		how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS}
		for range 16 {
			fd, err := unix.Openat2(d.Fd(), rel, how)
			switch {
			case err == nil:
				return newDir(fd, filepath.Join(d.Path, rel))
			case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
				continue // a rename raced the walk; the kernel asks to retry
			case errors.Is(err, unix.ENOSYS):
				openat2Missing.Store(true)
			case errors.Is(err, unix.EXDEV):
				return nil, fmt.Errorf("%w (a symlink on its path leads out of %s, or is absolute)", ErrOutside, d.Path)
			default:
				return nil, &os.PathError{Op: "open", Path: filepath.Join(d.Path, rel), Err: err}
			}
			break
		}
		if !openat2Missing.Load() {
			return nil, &os.PathError{Op: "open", Path: filepath.Join(d.Path, rel), Err: unix.EAGAIN}
		}
	}
	return d.walkNoFollow(rel)
}

// walkNoFollow opens rel beneath d one component at a time, refusing
// symlinks (the fallback for kernels without openat2).
func (d *Dir) walkNoFollow(rel string) (*Dir, error) {
	fd, err := unix.Openat(d.Fd(), ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	cur := d.Path
	for _, part := range strings.Split(rel, "/") {
		if part == "." || part == "" {
			continue
		}
		next := filepath.Join(cur, part)
		nfd, err := unix.Openat(fd, part, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			var st unix.Stat_t
			isLink := errors.Is(err, unix.ENOTDIR) && unix.Fstatat(fd, part, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
			unix.Close(fd)
			if isLink {
				return nil, fmt.Errorf("%w: %s is a symlink, and this kernel lacks openat2 (Linux 5.6) to tell where it leads safely", ErrOutside, next)
			}
			return nil, &os.PathError{Op: "open", Path: next, Err: err}
		}
		unix.Close(fd)
		fd, cur = nfd, next
	}
	return newDir(fd, cur)
}

// MkdirBeneath makes sure the directory rel exists beneath d and opens
// it. Missing components are made with mkdirat in the directory above
// them, itself opened beneath d, so nothing is ever created through a
// symlink or outside d; new intermediate directories get midMode, a new
// last component leafMode and the owner uid:gid (fchown on the
// descriptor of the directory just made). created says whether the last
// component was made.
func (d *Dir) MkdirBeneath(rel string, midMode, leafMode os.FileMode, uid, gid int) (dir *Dir, created bool, err error) {
	rel = filepath.Clean(rel)
	if rel == "." {
		dir, err := d.OpenBeneath(".")
		return dir, false, err
	}
	if filepath.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
		return nil, false, ErrOutside
	}
	parts := strings.Split(rel, "/")
	var parent *Dir
	defer func() {
		if parent != nil {
			parent.Close()
		}
	}()
	for i, part := range parts {
		prefix := strings.Join(parts[:i+1], "/")
		last := i == len(parts)-1
		var cur *Dir
		for attempt := 0; cur == nil; attempt++ {
			o, err := d.OpenBeneath(prefix)
			if err == nil {
				cur = o
				break
			}
			if !errors.Is(err, os.ErrNotExist) || attempt > 2 {
				return nil, false, err
			}
			pfd := d.Fd()
			if parent != nil {
				pfd = parent.Fd()
			}
			mode := midMode
			if last {
				mode = leafMode
			}
			if err := unix.Mkdirat(pfd, part, uint32(mode.Perm())); err != nil {
				if errors.Is(err, unix.EEXIST) {
					continue // made meanwhile: open it beneath d again
				}
				return nil, false, &os.PathError{Op: "mkdir", Path: filepath.Join(d.Path, prefix), Err: err}
			}
			// Fix the mode (the umask applied) and owner of exactly the
			// directory made: O_NOFOLLOW in the directory above it.
			nfd, err := unix.Openat(pfd, part, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil, false, &os.PathError{Op: "open", Path: filepath.Join(d.Path, prefix), Err: err}
			}
			if err := unix.Fchmod(nfd, uint32(mode.Perm())); err != nil {
				unix.Close(nfd)
				return nil, false, &os.PathError{Op: "chmod", Path: filepath.Join(d.Path, prefix), Err: err}
			}
			if last {
				if err := unix.Fchown(nfd, uid, gid); err != nil {
					unix.Close(nfd)
					return nil, false, &os.PathError{Op: "chown", Path: filepath.Join(d.Path, prefix), Err: err}
				}
				created = true
			}
			if cur, err = newDir(nfd, filepath.Join(d.Path, prefix)); err != nil {
				return nil, false, err
			}
		}
		if parent != nil {
			parent.Close()
		}
		parent = cur
	}
	dir, parent = parent, nil
	return dir, created, nil
}

// CloneTree returns a detached copy of the mount of the directory d (open_tree with OPEN_TREE_CLONE; with recursive, of the
// mounts below it too). The init attaches it in the sandbox (Bind.Tree):
// it shows the directory the daemon opened and checked, whatever has
// happened to the paths leading to it since.
func CloneTree(d *Dir, recursive bool) (*os.File, error) {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC | unix.AT_EMPTY_PATH)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	fd, err := unix.OpenTree(d.Fd(), "", flags)
	if err != nil {
		return nil, fmt.Errorf("open_tree %s: %w", d.Path, err)
	}
	return os.NewFile(uintptr(fd), "tree:"+d.Path), nil
}
