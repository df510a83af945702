// Package txn records changes to the host as transactions that can be
// undone exactly. A change records the state it found (mode, owner,
// content with a backup copy, a directory moved aside, a sysctl value)
// before it acts, in a journal under the store's directory
// (var/lib/cortex/ops/transactions, root's only), so that Undo can put
// every change back even after a crash halfway. Undo refuses a change
// whose target has been changed since (by someone else) unless forced.
//
// It is the mechanism of `cortex-ops repair` and of every other fix that
// changes the host (the CIS compliance fixes of `cortex-ops cis --fix`
// use it too): begin a transaction, call its change methods, commit.
//
//	tx, err := store.Begin("repair", "perms.keys", "key files closed to group and others")
//	if err != nil { ... }
//	if err := tx.Chmod("/etc/cortex/keys/openai", 0o600); err != nil {
//		tx.Abort() // reverts what was applied
//		return err
//	}
//	return tx.Commit()
//
// A dry run (Store.Plan) goes through the same calls and records what
// would change without changing or saving anything.
//
// The package is used by root processes only (cortexd and its `cortexd
// ops` subcommand). It knows nothing of checks or events: the caller
// reports transactions on the daemon's event stream (Store.Pending and
// MarkAnnounced keep track of which were).
package txn

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
	"golang.org/x/sys/unix"
)

// Kind names a change. Kinds are stable: they are stored in journals.
type Kind string

const (
	// Chmod: permission bits (and set-id, sticky) of a file or directory.
	Chmod Kind = "chmod"
	// Chown: owner and group.
	Chown Kind = "chown"
	// Write: a regular file's content (created or replaced); the prior
	// content is kept as a backup.
	Write Kind = "write"
	// Replace: a regular file replaced by another (renamed over it); the
	// prior file is kept as a backup.
	Replace Kind = "replace"
	// Remove: a file, symlink, socket, FIFO or empty directory removed;
	// a regular file's content is kept as a backup, the rest is
	// recreated from what was recorded.
	Remove Kind = "remove"
	// Move: a file or directory moved aside into the store (kept whole,
	// so undo moves it back).
	Move Kind = "move"
	// Mkdir: a directory created.
	Mkdir Kind = "mkdir"
	// Sysctl: a kernel parameter (/proc/sys) set.
	Sysctl Kind = "sysctl"
)

// Transaction states.
const (
	StateOpen      = "open"      // changes are being applied
	StateCommitted = "committed" // every change applied
	StateAborted   = "aborted"   // a change failed; the applied ones were reverted
	StateUndone    = "undone"    // Undo reverted every change
	StatePlanned   = "planned"   // a dry run: nothing was changed
)

// FileState is what a path was (or is to be). Zero fields were not
// recorded.
type FileState struct {
	Exists bool `json:"exists"`
	// Type is "file", "dir", "symlink", "socket", "fifo" or "other".
	Type   string  `json:"type,omitempty"`
	Mode   *uint32 `json:"mode,omitempty"` // permission, set-id and sticky bits
	UID    *int    `json:"uid,omitempty"`
	GID    *int    `json:"gid,omitempty"`
	Size   int64   `json:"size,omitempty"`
	SHA256 string  `json:"sha256,omitempty"` // regular files
	Target string  `json:"target,omitempty"` // symlinks
	Value  string  `json:"value,omitempty"`  // sysctls
}

// Change is one step of a transaction.
type Change struct {
	Kind Kind `json:"kind"`
	// Path is the file changed; for Sysctl, the parameter's name
	// (net.ipv4.ip_forward).
	Path   string     `json:"path"`
	Before *FileState `json:"before"`
	After  *FileState `json:"after"`
	// Backup is where the prior content (Write, Replace, Remove) or the
	// moved thing (Move) is kept, relative to the transaction's
	// directory.
	Backup  string `json:"backup,omitempty"`
	Applied bool   `json:"applied"`
	Undone  bool   `json:"undone,omitempty"`
}

// String describes the change in one line.
func (c Change) String() string {
	switch c.Kind {
	case Chmod:
		return fmt.Sprintf("chmod %s %s (was %s)", modeStr(c.After), c.Path, modeStr(c.Before))
	case Chown:
		return fmt.Sprintf("chown %s %s (was %s)", ownerStr(c.After), c.Path, ownerStr(c.Before))
	case Write:
		if c.Before != nil && c.Before.Exists {
			return fmt.Sprintf("rewrite %s (%d bytes, was %d; prior content kept)", c.Path, c.After.Size, c.Before.Size)
		}
		return fmt.Sprintf("create %s (%d bytes)", c.Path, c.After.Size)
	case Replace:
		return fmt.Sprintf("replace %s (%d bytes, was %d; prior file kept)", c.Path, c.After.Size, c.Before.Size)
	case Remove:
		return fmt.Sprintf("remove %s %s", c.Before.Type, c.Path)
	case Move:
		return fmt.Sprintf("move %s %s aside", c.Before.Type, c.Path)
	case Mkdir:
		return fmt.Sprintf("mkdir %s", c.Path)
	case Sysctl:
		return fmt.Sprintf("sysctl %s=%s (was %s)", c.Path, c.After.Value, c.Before.Value)
	}
	return string(c.Kind) + " " + c.Path
}

func modeStr(s *FileState) string {
	if s == nil || s.Mode == nil {
		return "?"
	}
	return fmt.Sprintf("%04o", *s.Mode)
}

func ownerStr(s *FileState) string {
	if s == nil || s.UID == nil || s.GID == nil {
		return "?"
	}
	return fmt.Sprintf("%d:%d", *s.UID, *s.GID)
}

// Txn is one transaction. Its change methods apply the change (or, in a
// dry run, only record it) and return an error without changing anything
// when the change cannot be made; the caller then Aborts.
type Txn struct {
	ID          string     `json:"id"`
	Time        time.Time  `json:"time"`
	Source      string     `json:"source"` // "repair", "cis", ...
	Check       string     `json:"check,omitempty"`
	Description string     `json:"description"`
	State       string     `json:"state"`
	Changes     []Change   `json:"changes"`
	Error       string     `json:"error,omitempty"` // why it was aborted
	UndoneAt    *time.Time `json:"undone_at,omitempty"`
	// Announced: the caller has reported the transaction's latest state
	// (on the daemon's event stream); see Store.Pending.
	Announced bool `json:"announced"`

	store *Store
	dry   bool
}

// Store keeps transactions under one directory.
type Store struct {
	dir string
	mu  sync.Mutex
	now func() time.Time
	// sysctlDir is /proc/sys (tests point it elsewhere).
	sysctlDir string
}

// Open returns the store in dir, creating it (0700) if needed.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("transaction store: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("transaction store: %w", err)
	}
	return &Store{dir: dir, now: time.Now, sysctlDir: "/proc/sys"}, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

func newID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return "tx-" + now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// Begin starts a transaction and saves it (state open).
func (s *Store) Begin(source, check, description string) (*Txn, error) {
	now := s.now()
	t := &Txn{ID: newID(now), Time: now.UTC(), Source: source, Check: check, Description: description, State: StateOpen, Changes: []Change{}, store: s}
	if err := os.Mkdir(t.dir(), 0o700); err != nil {
		return nil, fmt.Errorf("transaction %s: %w", t.ID, err)
	}
	return t, t.save()
}

// Plan starts a dry run: the change methods record what they would do and
// change nothing; nothing is saved.
func (s *Store) Plan(source, check, description string) *Txn {
	return &Txn{ID: "(dry run)", Time: s.now().UTC(), Source: source, Check: check, Description: description, State: StatePlanned, Changes: []Change{}, store: s, dry: true}
}

// DryRun reports whether t only records.
func (t *Txn) DryRun() bool { return t.dry }

func (t *Txn) dir() string     { return filepath.Join(t.store.dir, t.ID) }
func (t *Txn) journal() string { return filepath.Join(t.store.dir, t.ID+".json") }

func (t *Txn) save() error {
	if t.dry {
		return nil
	}
	data, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(t.journal(), data, 0o600)
}

// writeAtomic writes data to path through a temporary file, synced and
// renamed.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Commit ends the transaction; every change was applied.
func (t *Txn) Commit() error {
	if t.dry {
		return nil
	}
	t.State = StateCommitted
	return t.save()
}

// Abort reverts the applied changes in reverse order and records why
// (cause may be nil). It returns the revert errors, if any.
func (t *Txn) Abort(cause error) error {
	if t.dry {
		return nil
	}
	var errs []error
	for i := len(t.Changes) - 1; i >= 0; i-- {
		c := &t.Changes[i]
		if !c.Applied || c.Undone {
			continue
		}
		if err := t.revert(c); err != nil {
			errs = append(errs, err)
			continue
		}
		c.Undone = true
	}
	t.State = StateAborted
	if cause != nil {
		t.Error = cause.Error()
	}
	if err := t.save(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// do records c (not applied), runs apply, then records it applied. In a
// dry run it only records.
func (t *Txn) do(c Change, apply func() error) error {
	t.Changes = append(t.Changes, c)
	if t.dry {
		return nil
	}
	i := len(t.Changes) - 1
	if err := t.save(); err != nil {
		t.Changes = t.Changes[:i]
		return err
	}
	if err := apply(); err != nil {
		t.Changes = t.Changes[:i]
		_ = t.save()
		return err
	}
	t.Changes[i].Applied = true
	return t.save()
}

// stat records what path is now (without following a final symlink).
func stat(path string, hash bool) (*FileState, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &FileState{Exists: false}, nil
	}
	if err != nil {
		return nil, err
	}
	st := &FileState{Exists: true, Type: typeOf(fi.Mode())}
	mode := uint32(fi.Mode().Perm())
	if fi.Mode()&os.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if fi.Mode()&os.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if fi.Mode()&os.ModeSticky != 0 {
		mode |= 0o1000
	}
	st.Mode = &mode
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		uid, gid := int(sys.Uid), int(sys.Gid)
		st.UID, st.GID = &uid, &gid
	}
	switch st.Type {
	case "file":
		st.Size = fi.Size()
		if hash {
			if st.SHA256, err = fileSHA256(path); err != nil {
				return nil, err
			}
		}
	case "symlink":
		if st.Target, err = os.Readlink(path); err != nil {
			return nil, err
		}
	}
	return st, nil
}

func typeOf(m os.FileMode) string {
	switch {
	case m.IsRegular():
		return "file"
	case m.IsDir():
		return "dir"
	case m&os.ModeSymlink != 0:
		return "symlink"
	case m&os.ModeSocket != 0:
		return "socket"
	case m&os.ModeNamedPipe != 0:
		return "fifo"
	}
	return "other"
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func sha(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

func clone(s *FileState) *FileState {
	c := *s
	if s.Mode != nil {
		m := *s.Mode
		c.Mode = &m
	}
	if s.UID != nil {
		u := *s.UID
		c.UID = &u
	}
	if s.GID != nil {
		g := *s.GID
		c.GID = &g
	}
	return &c
}

func refuseSymlink(path string, st *FileState) error {
	if !st.Exists {
		return errdefs.New(errdefs.NotFound, "%s does not exist", path)
	}
	if st.Type == "symlink" {
		return errdefs.New(errdefs.FailedPrecondition, "%s is a symlink; refusing to change what it points to", path)
	}
	return nil
}

// Chmod sets path's mode (permission, set-id and sticky bits). Symlinks
// are refused.
func (t *Txn) Chmod(path string, mode os.FileMode) error {
	before, err := stat(path, false)
	if err != nil {
		return err
	}
	if err := refuseSymlink(path, before); err != nil {
		return err
	}
	after := clone(before)
	m := uint32(mode & 0o7777)
	after.Mode = &m
	return t.do(Change{Kind: Chmod, Path: path, Before: before, After: after}, func() error {
		return chmodNoFollow(path, m)
	})
}

// chmodNoFollow changes the mode through a descriptor opened without
// following a symlink (so a path swapped for a link is refused).
func chmodNoFollow(path string, mode uint32) error {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return errdefs.New(errdefs.FailedPrecondition, "%s is a symlink", path)
	}
	// fchmod does not take O_PATH descriptors; /proc/self/fd does.
	if err := os.Chmod("/proc/self/fd/"+strconv.Itoa(fd), os.FileMode(mode&0o777)|modeBits(mode)); err != nil {
		return &os.PathError{Op: "chmod", Path: path, Err: errors.Unwrap(err)}
	}
	return nil
}

func modeBits(mode uint32) os.FileMode {
	var m os.FileMode
	if mode&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if mode&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if mode&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

// Chown sets path's owner and group (-1 keeps one). Symlinks are refused.
func (t *Txn) Chown(path string, uid, gid int) error {
	before, err := stat(path, false)
	if err != nil {
		return err
	}
	if err := refuseSymlink(path, before); err != nil {
		return err
	}
	after := clone(before)
	if uid >= 0 {
		after.UID = &uid
	}
	if gid >= 0 {
		after.GID = &gid
	}
	return t.do(Change{Kind: Chown, Path: path, Before: before, After: after}, func() error {
		return os.Lchown(path, *after.UID, *after.GID)
	})
}

// WriteFile sets a regular file's content and mode (creating it, owned
// by the caller, if absent); the prior content is kept for Undo.
func (t *Txn) WriteFile(path string, data []byte, mode os.FileMode) error {
	before, err := stat(path, true)
	if err != nil {
		return err
	}
	if before.Exists && before.Type != "file" {
		return errdefs.New(errdefs.FailedPrecondition, "%s is a %s, not a regular file", path, before.Type)
	}
	m := uint32(mode.Perm())
	after := &FileState{Exists: true, Type: "file", Mode: &m, Size: int64(len(data)), SHA256: sha(data), UID: before.UID, GID: before.GID}
	c := Change{Kind: Write, Path: path, Before: before, After: after}
	if before.Exists {
		c.Backup = t.backupName(path)
	}
	return t.do(c, func() error {
		if before.Exists {
			if err := copyFile(path, filepath.Join(t.dir(), c.Backup)); err != nil {
				return fmt.Errorf("back up %s: %w", path, err)
			}
		}
		if err := writeAtomic(path, data, os.FileMode(m)); err != nil {
			return err
		}
		if before.UID != nil {
			return os.Lchown(path, *before.UID, *before.GID)
		}
		return nil
	})
}

// ReplaceFile renames src over path (same filesystem); the prior file is
// moved into the transaction as the backup.
func (t *Txn) ReplaceFile(path, src string) error {
	before, err := stat(path, true)
	if err != nil {
		return err
	}
	if !before.Exists || before.Type != "file" {
		return errdefs.New(errdefs.FailedPrecondition, "%s is not a regular file", path)
	}
	after, err := stat(src, true)
	if err != nil {
		return err
	}
	if after.Type != "file" {
		return errdefs.New(errdefs.FailedPrecondition, "%s is not a regular file", src)
	}
	c := Change{Kind: Replace, Path: path, Before: before, After: after, Backup: t.backupName(path)}
	return t.do(c, func() error {
		if err := moveFile(path, filepath.Join(t.dir(), c.Backup)); err != nil {
			return fmt.Errorf("back up %s: %w", path, err)
		}
		if err := os.Rename(src, path); err != nil {
			_ = moveFile(filepath.Join(t.dir(), c.Backup), path)
			return err
		}
		return nil
	})
}

// Remove removes a file, symlink, socket, FIFO or empty directory. A
// regular file's content is kept for Undo; the others are recreated from
// what was recorded (a socket comes back as a socket no one listens on).
func (t *Txn) Remove(path string) error {
	before, err := stat(path, true)
	if err != nil {
		return err
	}
	if !before.Exists {
		return errdefs.New(errdefs.NotFound, "%s does not exist", path)
	}
	if before.Type == "other" {
		return errdefs.New(errdefs.FailedPrecondition, "%s is a device or unknown file type; refusing to remove it", path)
	}
	c := Change{Kind: Remove, Path: path, Before: before, After: &FileState{Exists: false}}
	if before.Type == "file" {
		c.Backup = t.backupName(path)
	}
	return t.do(c, func() error {
		if c.Backup != "" {
			if err := moveFile(path, filepath.Join(t.dir(), c.Backup)); err != nil {
				return fmt.Errorf("back up %s: %w", path, err)
			}
			return nil
		}
		if before.Type == "dir" {
			return unix.Rmdir(path)
		}
		return os.Remove(path)
	})
}

// MoveAside moves a file or directory (with everything in it) into the
// transaction; Undo moves it back. It must be on the store's filesystem
// or small enough to copy.
func (t *Txn) MoveAside(path string) error {
	before, err := stat(path, false)
	if err != nil {
		return err
	}
	if !before.Exists {
		return errdefs.New(errdefs.NotFound, "%s does not exist", path)
	}
	c := Change{Kind: Move, Path: path, Before: before, After: &FileState{Exists: false}, Backup: t.backupName(path)}
	return t.do(c, func() error {
		dst := filepath.Join(t.dir(), c.Backup)
		if err := os.Rename(path, dst); err != nil {
			if !errors.Is(err, unix.EXDEV) {
				return err
			}
			if err := copyTree(path, dst); err != nil {
				_ = os.RemoveAll(dst)
				return err
			}
			return os.RemoveAll(path)
		}
		return nil
	})
}

// Mkdir creates a directory with mode.
func (t *Txn) Mkdir(path string, mode os.FileMode) error {
	before, err := stat(path, false)
	if err != nil {
		return err
	}
	if before.Exists {
		return errdefs.New(errdefs.AlreadyExists, "%s exists", path)
	}
	m := uint32(mode.Perm())
	return t.do(Change{Kind: Mkdir, Path: path, Before: before, After: &FileState{Exists: true, Type: "dir", Mode: &m}}, func() error {
		if err := os.Mkdir(path, mode); err != nil {
			return err
		}
		return os.Chmod(path, mode.Perm())
	})
}

// Sysctl sets a kernel parameter (name as in sysctl(8): dots, or slashes
// under /proc/sys).
func (t *Txn) Sysctl(name, value string) error {
	p := t.store.sysctlPath(name)
	old, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("sysctl %s: %w", name, err)
	}
	before := &FileState{Exists: true, Value: strings.TrimSpace(string(old))}
	after := &FileState{Exists: true, Value: value}
	return t.do(Change{Kind: Sysctl, Path: name, Before: before, After: after}, func() error {
		return os.WriteFile(p, []byte(value+"\n"), 0)
	})
}

func (s *Store) sysctlPath(name string) string {
	return filepath.Join(s.sysctlDir, strings.ReplaceAll(strings.TrimPrefix(name, "/proc/sys/"), ".", "/"))
}

// backupName is a unique name for path's backup within the transaction.
func (t *Txn) backupName(path string) string {
	return fmt.Sprintf("%03d-%s", len(t.Changes), filepath.Base(path))
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// moveFile renames, or copies and removes across filesystems.
func moveFile(src, dst string) error {
	err := os.Rename(src, dst)
	if err == nil || !errors.Is(err, unix.EXDEV) {
		return err
	}
	if err := copyFile(src, dst); err != nil {
		_ = os.Remove(dst)
		return err
	}
	return os.Remove(src)
}

// copyTree copies a directory tree (files, dirs, symlinks; modes and
// owners kept).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			if err := os.Mkdir(target, fi.Mode().Perm()); err != nil {
				return err
			}
		case fi.Mode()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(l, target); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			if err := copyFile(p, target); err != nil {
				return err
			}
		default:
			return nil // sockets and the like are not worth keeping
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			_ = os.Lchown(target, int(st.Uid), int(st.Gid))
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			_ = os.Chmod(target, fi.Mode().Perm()|fi.Mode()&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky))
		}
		return nil
	})
}

// Get loads a transaction.
func (s *Store) Get(id string) (*Txn, error) {
	if !validID(id) {
		return nil, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "%q is not a transaction id", id), "cortex-ops repair --list")
	}
	data, err := os.ReadFile(filepath.Join(s.dir, id+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errdefs.WithHint(errdefs.New(errdefs.NotFound, "transaction %s not found", id), "cortex-ops repair --list")
	}
	if err != nil {
		return nil, err
	}
	t := &Txn{store: s}
	if err := json.Unmarshal(data, t); err != nil {
		return nil, fmt.Errorf("transaction %s: %w", id, err)
	}
	return t, nil
}

func validID(id string) bool {
	if !strings.HasPrefix(id, "tx-") || len(id) > 64 {
		return false
	}
	for _, r := range id[3:] {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r == '-') {
			return false
		}
	}
	return true
}

// List returns every transaction, oldest first.
func (s *Store) List() ([]*Txn, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []*Txn
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !validID(id) {
			continue
		}
		t, err := s.Get(id)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Pending lists the transactions whose latest state has not been
// announced (MarkAnnounced).
func (s *Store) Pending() ([]*Txn, error) {
	all, err := s.List()
	if err != nil {
		return nil, err
	}
	var out []*Txn
	for _, t := range all {
		if !t.Announced && t.State != StateOpen {
			out = append(out, t)
		}
	}
	return out, nil
}

// MarkAnnounced records that t's latest state has been reported.
func (s *Store) MarkAnnounced(t *Txn) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t.store = s
	t.Announced = true
	return t.save()
}

// ConflictError lists the changes Undo refused because their targets
// changed since the transaction.
type ConflictError struct {
	ID        string
	Conflicts []string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("transaction %s: changed since the repair, so undo would not restore it exactly: %s", e.ID, strings.Join(e.Conflicts, "; "))
}

// Undo reverts every applied change of transaction id in reverse order.
// It first checks that each target is still as the change left it; if
// any is not, it changes nothing and returns a *ConflictError (category
// FailedPrecondition) unless force is set.
func (s *Store) Undo(id string, force bool) (*Txn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.Get(id)
	if err != nil {
		return nil, err
	}
	switch t.State {
	case StateUndone:
		return t, errdefs.New(errdefs.FailedPrecondition, "transaction %s was undone already (%s)", id, t.UndoneAt.Format(time.RFC3339))
	case StateAborted:
		return t, errdefs.New(errdefs.FailedPrecondition, "transaction %s was aborted and reverted when it failed: %s", id, t.Error)
	}
	if !force {
		var conflicts []string
		for _, c := range t.Changes {
			if !c.Applied || c.Undone {
				continue
			}
			if why := t.conflict(c); why != "" {
				conflicts = append(conflicts, c.Path+": "+why)
			}
		}
		if len(conflicts) > 0 {
			return t, errdefs.WithHint(errdefs.Wrap(errdefs.FailedPrecondition, &ConflictError{ID: id, Conflicts: conflicts}),
				"look at what changed; cortex-ops repair --undo "+id+" --force reverts anyway")
		}
	}
	var errs []error
	for i := len(t.Changes) - 1; i >= 0; i-- {
		c := &t.Changes[i]
		if !c.Applied || c.Undone {
			continue
		}
		if err := t.revert(c); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c, err))
			continue
		}
		c.Undone = true
		_ = t.save()
	}
	if len(errs) == 0 {
		now := s.now().UTC()
		t.State, t.UndoneAt = StateUndone, &now
	}
	t.Announced = false
	if err := t.save(); err != nil {
		errs = append(errs, err)
	}
	return t, errors.Join(errs...)
}

// conflict says how c's target differs from what c left, or "".
func (t *Txn) conflict(c Change) string {
	if c.Kind == Sysctl {
		cur, err := os.ReadFile(t.store.sysctlPath(c.Path))
		if err != nil {
			return err.Error()
		}
		if v := strings.TrimSpace(string(cur)); v != c.After.Value {
			return fmt.Sprintf("now %s, the repair set %s", v, c.After.Value)
		}
		return ""
	}
	now, err := stat(c.Path, c.Kind == Write || c.Kind == Replace)
	if err != nil {
		return err.Error()
	}
	switch c.Kind {
	case Chmod:
		if !now.Exists || now.Mode == nil || *now.Mode != *c.After.Mode {
			return fmt.Sprintf("mode now %s, the repair set %s", modeStr(now), modeStr(c.After))
		}
	case Chown:
		if !now.Exists || *now.UID != *c.After.UID || *now.GID != *c.After.GID {
			return fmt.Sprintf("owner now %s, the repair set %s", ownerStr(now), ownerStr(c.After))
		}
	case Write, Replace:
		if !now.Exists || now.SHA256 != c.After.SHA256 {
			return "content changed since the repair"
		}
	case Remove, Move:
		if now.Exists {
			return "something exists there again"
		}
		if c.Backup != "" {
			if _, err := os.Lstat(filepath.Join(t.dir(), c.Backup)); err != nil {
				return "the kept copy is gone: " + err.Error()
			}
		}
	case Mkdir:
		if !now.Exists || now.Type != "dir" {
			return "no longer a directory"
		}
	}
	return ""
}

// revert puts c's Before state back.
func (t *Txn) revert(c *Change) error {
	b := c.Before
	restoreMeta := func() error {
		if b.UID != nil && b.GID != nil {
			if err := os.Lchown(c.Path, *b.UID, *b.GID); err != nil {
				return err
			}
		}
		if b.Mode != nil && b.Type != "symlink" {
			return chmodNoFollow(c.Path, *b.Mode)
		}
		return nil
	}
	switch c.Kind {
	case Chmod:
		return chmodNoFollow(c.Path, *b.Mode)
	case Chown:
		return os.Lchown(c.Path, *b.UID, *b.GID)
	case Write:
		if !b.Exists {
			return os.Remove(c.Path)
		}
		data, err := os.ReadFile(filepath.Join(t.dir(), c.Backup))
		if err != nil {
			return err
		}
		if err := writeAtomic(c.Path, data, os.FileMode(*b.Mode&0o777)); err != nil {
			return err
		}
		return restoreMeta()
	case Replace:
		return moveFile(filepath.Join(t.dir(), c.Backup), c.Path)
	case Remove:
		switch b.Type {
		case "file":
			if err := moveFile(filepath.Join(t.dir(), c.Backup), c.Path); err != nil {
				return err
			}
		case "dir":
			if err := os.Mkdir(c.Path, 0o700); err != nil {
				return err
			}
		case "symlink":
			if err := os.Symlink(b.Target, c.Path); err != nil {
				return err
			}
		case "fifo":
			if err := unix.Mkfifo(c.Path, 0o600); err != nil {
				return err
			}
		case "socket":
			l, err := net.ListenUnix("unix", &net.UnixAddr{Name: c.Path, Net: "unix"})
			if err != nil {
				return err
			}
			l.SetUnlinkOnClose(false)
			l.Close()
		}
		return restoreMeta()
	case Move:
		src := filepath.Join(t.dir(), c.Backup)
		err := os.Rename(src, c.Path)
		if errors.Is(err, unix.EXDEV) {
			if err = copyTree(src, c.Path); err == nil {
				err = os.RemoveAll(src)
			}
		}
		return err
	case Mkdir:
		return unix.Rmdir(c.Path)
	case Sysctl:
		return os.WriteFile(t.store.sysctlPath(c.Path), []byte(b.Value+"\n"), 0)
	}
	return fmt.Errorf("unknown change kind %q", c.Kind)
}

// Discard removes the journal of a transaction that changed nothing.
func (s *Store) Discard(id string) error {
	t, err := s.Get(id)
	if err != nil {
		return err
	}
	for _, c := range t.Changes {
		if c.Applied && !c.Undone {
			return errdefs.New(errdefs.FailedPrecondition, "transaction %s changed something; it is kept", id)
		}
	}
	_ = os.RemoveAll(t.dir())
	return os.Remove(t.journal())
}
