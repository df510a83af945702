package sandbox

import (
	"fmt"
	"os"
	"path/filepath"

	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// stepPrivileges sets no_new_privs and empties the capability bounding and
// ambient sets on the init's locked thread; the agent, forked from that
// thread and switched to an unprivileged uid, can never regain a
// capability, not even through a setuid binary.
func stepPrivileges(s *initState) error {
	if s.spec.UID == 0 {
		return fmt.Errorf("confined agents must not run as root (uid 0)")
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	for c := 0; c <= lastCap(); c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	return nil
}

func lastCap() int {
	for c := 63; c >= 0; c-- {
		if _, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); err == nil {
			return c
		}
	}
	return 40
}

// Landlock access rights Cortex grants.
const (
	llReadDir  = ll.AccessFSReadDir
	llROFile   = ll.AccessFSExecute | ll.AccessFSReadFile
	llRODir    = llROFile | ll.AccessFSReadDir
	llRWFile   = ll.AccessFSReadFile | ll.AccessFSWriteFile | ll.AccessFSTruncate | ll.AccessFSIoctlDev
	llFileOnly = ll.AccessFSExecute | ll.AccessFSReadFile | ll.AccessFSWriteFile | ll.AccessFSTruncate | ll.AccessFSIoctlDev
)

// LandlockHandled is the set of filesystem rights the kernel's ABI
// version can restrict.
func LandlockHandled(abi int) uint64 {
	if abi < 1 {
		return 0
	}
	h := uint64(ll.AccessFSMakeSym<<1) - 1 // ABI 1: execute .. make_sym
	if abi >= 2 {
		h |= ll.AccessFSRefer
	}
	if abi >= 3 {
		h |= ll.AccessFSTruncate
	}
	if abi >= 5 {
		h |= ll.AccessFSIoctlDev
	}
	return h
}

// LandlockRule allows Access beneath Path.
type LandlockRule struct {
	Path   string
	Access uint64
}

// LandlockRules mirrors a rootfs as Landlock rules: read-only binds may be
// read and executed, writable binds and the private scratch areas may be
// written, "/" may only be listed. isDir tells directories from files (in
// the init: a stat of the new root). Access is masked to what abi can
// handle. The rules are data so tests compare them without the kernel.
func LandlockRules(r *Rootfs, isDir func(string) bool, abi int) []LandlockRule {
	h := LandlockHandled(abi)
	var out []LandlockRule
	add := func(p string, access uint64) {
		if !isDir(p) {
			access &= llFileOnly
		}
		out = append(out, LandlockRule{Path: p, Access: access & h})
	}
	add("/", llReadDir)
	add("/dev", llReadDir)
	for _, b := range r.Binds {
		t := filepath.Clean("/" + b.Target)
		switch {
		case b.Writable:
			add(t, h)
		case isDir(t):
			add(t, llRODir)
		default:
			add(t, llROFile)
		}
	}
	for _, f := range r.Files {
		add(filepath.Clean("/"+f.Path), ll.AccessFSReadFile)
	}
	for _, d := range []string{"/tmp", "/dev/shm", "/dev/pts"} {
		add(d, h)
	}
	add("/proc", llRODir)
	for _, n := range devNodes {
		add("/dev/"+n, llRWFile)
	}
	return out
}

// stepLandlock applies LandlockRules as a second wall behind the mount
// tree, on the init's locked thread only (the agent is forked from it and
// inherits the domain; the init's other threads never run agent code).
// With ABI 6 the domain is also scoped: no signals to, and no abstract
// unix sockets of, processes outside it.
func stepLandlock(s *initState) error {
	abi := LandlockABI()
	if abi < 1 {
		return nil
	}
	isDir := func(p string) bool {
		fi, err := os.Stat(p)
		return err == nil && fi.IsDir()
	}
	attr := ll.RulesetAttr{HandledAccessFS: LandlockHandled(abi)}
	if abi >= 6 {
		attr.Scoped = ll.ScopeAbstractUnixSocket | ll.ScopeSignal
	}
	fd, err := ll.LandlockCreateRuleset(&attr, 0)
	if err != nil {
		return fmt.Errorf("landlock_create_ruleset: %w", err)
	}
	defer unix.Close(fd)
	for _, r := range LandlockRules(s.spec.Rootfs, isDir, abi) {
		pfd, err := unix.Open(r.Path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // an optional bind that was absent
		}
		err = ll.LandlockAddPathBeneathRule(fd, &ll.PathBeneathAttr{AllowedAccess: r.Access, ParentFd: pfd}, 0)
		unix.Close(pfd)
		if err != nil {
			return fmt.Errorf("landlock rule for %s: %w", r.Path, err)
		}
	}
	if err := ll.LandlockRestrictSelf(fd, 0); err != nil {
		return fmt.Errorf("landlock_restrict_self: %w", err)
	}
	return nil
}

// LandlockABI reports the kernel's Landlock ABI version (0 if absent).
func LandlockABI() int {
	v, err := ll.LandlockGetABIVersion()
	if err != nil {
		return 0
	}
	return v
}
