package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
	"golang.org/x/sys/unix"
)

// Bounds on the operations that wait for the kernel. Variables so tests
// could shorten them; nothing changes them in production.
var (
	freezeTimeout = 5 * time.Second        // Freeze and Thaw
	killTimeout   = 5 * time.Second        // Kill, until the group is empty
	removeTimeout = 2 * time.Second        // rmdir retries while EBUSY
	killFreezeMax = 500 * time.Millisecond // freeze wait inside one kill round
)

// groupRel is the path of group name below parent, relative to a
// hierarchy's mount point: "/parent/name".
func groupRel(parent, name string) string { return path.Join("/", parent, name) }

func exists(dir string) bool {
	_, err := os.Stat(dir)
	return err == nil
}

// notFound turns a missing cgroup file or directory into a NotFound error.
func notFound(err error, what string) error {
	if errors.Is(err, fs.ErrNotExist) {
		return errdefs.Wrap(errdefs.NotFound, fmt.Errorf("%s: cgroup does not exist: %w", what, err))
	}
	return fmt.Errorf("%s: %w", what, err)
}

// claim creates the leaf directory dir atomically (and its missing
// ancestors). It fails with AlreadyExists if dir exists.
func claim(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(dir), err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return errdefs.New(errdefs.AlreadyExists, "cgroup %s already exists", dir)
		}
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return nil
}

// removeTree removes the cgroup directory dir and every cgroup below it,
// deepest first, retrying while the kernel answers EBUSY (tasks that are
// still exiting). A missing dir is not an error.
func removeTree(dir string, deadline time.Time) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove cgroup %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name()), deadline); err != nil {
				return err
			}
		}
	}
	delay := 5 * time.Millisecond
	for {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.EAGAIN) || time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		time.Sleep(delay)
		delay = min(delay*2, 100*time.Millisecond)
	}
}

// prune removes the now-empty intermediate directories between the group
// rel and the parent (exclusive) under mount point. It stops at the first
// directory that is not empty.
func prune(point, parentRel, rel string) {
	for d := path.Dir(rel); d != parentRel && strings.HasPrefix(d, parentRel+"/"); d = path.Dir(d) {
		if err := unix.Rmdir(filepath.Join(point, d)); err != nil && !errors.Is(err, unix.ENOENT) {
			return
		}
	}
}

// listDirs returns every directory below point/parentRel as a name
// relative to it.
func listDirs(point, parentRel string) ([]string, error) {
	var out []string
	var walk func(dir, name string) error
	walk = func(dir, name string) error {
		entries, err := os.ReadDir(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walked
			}
			return fmt.Errorf("list cgroups in %s: %w", dir, err)
		}
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			child := e.Name()
			if name != "" {
				child = name + "/" + e.Name()
			}
			out = append(out, child)
			if err := walk(filepath.Join(dir, e.Name()), child); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(filepath.Join(point, parentRel), ""); err != nil {
		return nil, err
	}
	return out, nil
}

// leaves returns the sorted names in dirs that have no other name of dirs
// below them: the groups, as opposed to intermediate directories. With
// several hierarchies, dirs is their union, so an intermediate directory
// that one hierarchy lost its children in is still not a group.
func leaves(dirs []string) []string {
	inner := map[string]bool{}
	for _, d := range dirs {
		for p := path.Dir(d); p != "." && p != "/"; p = path.Dir(p) {
			inner[p] = true
		}
	}
	var out []string
	for _, d := range unionSorted(dirs) {
		if !inner[d] {
			out = append(out, d)
		}
	}
	return out
}

// unionSorted merges lists into one sorted list without duplicates.
func unionSorted[T interface{ ~int | ~string }](lists ...[]T) []T {
	var out []T
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// waitFor polls cond until it reports true, an error, or timeout passes
// (then it returns errTimeout).
func waitFor(timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return errTimeout
		}
		time.Sleep(delay)
		delay = min(delay*2, 50*time.Millisecond)
	}
}

var errTimeout = errors.New("timed out")

// killer is what killAll needs of a driver.
type killer struct {
	name   string                // for errors
	procs  func() ([]int, error) // members, recursive
	freeze func() error          // nil if the group cannot be frozen
	thaw   func() error
	member func(pid int) bool // pid is (still) in the group
}

// killAll SIGKILLs every member until the group is empty: freeze (so
// nothing forks or exits and frees its pid meanwhile), signal each member,
// thaw (frozen tasks die once thawed), repeat.
func killAll(k killer) error {
	deadline := time.Now().Add(killTimeout)
	delay := 2 * time.Millisecond
	for {
		pids, err := k.procs()
		if err != nil {
			return fmt.Errorf("kill cgroup %s: %w", k.name, err)
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return errdefs.New(errdefs.Unavailable, "kill cgroup %s: %d processes left after %s: %v", k.name, len(pids), killTimeout, pids)
		}
		frozen := k.freeze != nil && k.freeze() == nil
		for _, pid := range pids {
			if err := signalMember(pid, k.member); err != nil {
				if frozen {
					_ = k.thaw()
				}
				return fmt.Errorf("kill cgroup %s: %w", k.name, err)
			}
		}
		if frozen {
			if err := k.thaw(); err != nil {
				return fmt.Errorf("kill cgroup %s: thaw: %w", k.name, err)
			}
		}
		time.Sleep(delay)
		delay = min(delay*2, 50*time.Millisecond)
	}
}

// signalMember SIGKILLs pid if it is still a member of the group. The
// pidfd pins the process: if member saw it in the group and it is still
// alive after that check, the pid cannot have been reused in between, so
// a process outside the group is never signalled.
func signalMember(pid int, member func(int) bool) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil // already gone
		}
		if !errors.Is(err, unix.ENOSYS) {
			return fmt.Errorf("pidfd_open %d: %w", pid, err)
		}
		// Kernels before 5.3: plain kill after the membership check.
		if !member(pid) {
			return nil
		}
		if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("kill %d: %w", pid, err)
		}
		return nil
	}
	defer unix.Close(fd)
	if !member(pid) {
		return nil
	}
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("pidfd_send_signal %d: %w", pid, err)
	}
	return nil
}

// inCgroup reports whether a /proc/<pid>/cgroup file places the process
// at want or below it in the hierarchy that has controller (v1), or in the
// unified hierarchy when controller is "".
func inCgroup(procCgroup, controller, want string) bool {
	for _, line := range strings.Split(procCgroup, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var match bool
		if controller == "" {
			match = parts[0] == "0" && parts[1] == ""
		} else {
			match = slices.Contains(strings.Split(parts[1], ","), controller)
		}
		if match {
			p := parts[2]
			return p == want || strings.HasPrefix(p, want+"/")
		}
	}
	return false
}

// hierPath names a group's place in one hierarchy as /proc/<pid>/cgroup
// shows it: the controller ("" for the unified hierarchy) and the path.
type hierPath struct{ controller, path string }

// procMember returns a member check that passes if /proc/<pid>/cgroup
// places pid in the group (or below it) in any of the hierarchies. Any,
// not all: a process an interrupted AddProc left in only some
// hierarchies must still be killed.
func procMember(in []hierPath) func(int) bool {
	return func(pid int) bool {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
		if err != nil {
			return false
		}
		for _, h := range in {
			if inCgroup(string(data), h.controller, h.path) {
				return true
			}
		}
		return false
	}
}

// addProcErr gives the errors of writing a pid to cgroup.procs their
// category.
func addProcErr(err error, pid int, name string) error {
	switch {
	case errors.Is(err, syscall.ESRCH):
		return errdefs.New(errdefs.NotFound, "add process %d to cgroup %s: no such process", pid, name)
	case errors.Is(err, fs.ErrNotExist):
		return notFound(err, "add process "+strconv.Itoa(pid)+" to cgroup "+name)
	}
	return fmt.Errorf("add process %d to cgroup %s: %w", pid, name, err)
}

// normLimit maps the kernel's "no limit" values (v1: a huge page-aligned
// number, v2: "max" read as MaxUint64) to 0.
func normLimit(v uint64) uint64 {
	if v >= 1<<62 {
		return 0
	}
	return v
}

// removeParent removes point/parentRel in every hierarchy if none of them
// holds a directory below it (see Manager.RemoveParent).
func removeParent(points []string, parentRel string) error {
	for _, p := range points {
		names, err := listDirs(p, parentRel)
		if err != nil {
			return err
		}
		if len(names) > 0 {
			return errdefs.New(errdefs.FailedPrecondition, "cgroup parent %s still holds %s", filepath.Join(p, parentRel), strings.Join(names, ", "))
		}
	}
	var errs []error
	for _, p := range points {
		if err := unix.Rmdir(filepath.Join(p, parentRel)); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove cgroup parent %s: %w", filepath.Join(p, parentRel), err))
		}
	}
	return errors.Join(errs...)
}

// readFlat reads keys of a flat-keyed file ("key value" lines); missing
// keys read 0.
func readFlat(file string, keys ...string) (map[string]uint64, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, k := range keys {
		out[k], _ = parseFlatKeyed(string(data), k)
	}
	return out, nil
}

// readUint reads a file holding one number; 0 if it is absent.
func readUint(file string) uint64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v
}
