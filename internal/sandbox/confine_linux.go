package sandbox

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/landlock-lsm/go-landlock/landlock"
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

// LandlockRules mirrors a rootfs as Landlock rules: read-only binds may be
// read and executed, writable binds and the private scratch areas may be
// written, "/" may only be listed. isDir tells directories from files (in
// the init: a stat of the new root). The rules are returned as data so
// tests can compare them without the kernel.
func LandlockRules(r *Rootfs, isDir func(string) bool) []landlock.Rule {
	var ro, rw, roFiles, rwFiles []string
	for _, b := range r.Binds {
		t := filepath.Clean("/" + b.Target)
		dir := isDir(t)
		switch {
		case b.Writable && dir:
			rw = append(rw, t)
		case b.Writable:
			rwFiles = append(rwFiles, t)
		case dir:
			ro = append(ro, t)
		default:
			roFiles = append(roFiles, t)
		}
	}
	for _, f := range r.Files {
		roFiles = append(roFiles, filepath.Clean("/"+f.Path))
	}
	rw = append(rw, "/tmp", "/dev/shm", "/dev/pts")
	ro = append(ro, "/proc")
	for _, n := range devNodes {
		rwFiles = append(rwFiles, "/dev/"+n)
	}
	rules := []landlock.Rule{
		landlock.PathAccess(landlock.AccessFSSet(unix.LANDLOCK_ACCESS_FS_READ_DIR), "/", "/dev"),
	}
	if len(ro) > 0 {
		rules = append(rules, landlock.RODirs(ro...).IgnoreIfMissing())
	}
	if len(rw) > 0 {
		rules = append(rules, landlock.RWDirs(rw...).IgnoreIfMissing())
	}
	if len(roFiles) > 0 {
		rules = append(rules, landlock.ROFiles(roFiles...).IgnoreIfMissing())
	}
	rules = append(rules, landlock.RWFiles(rwFiles...).WithIoctlDev().IgnoreIfMissing())
	return rules
}

// stepLandlock applies LandlockRules as a second wall behind the mount
// tree (best effort down to the kernel's ABI), plus IPC scoping: no
// signals or abstract unix sockets across the sandbox boundary.
func stepLandlock(s *initState) error {
	cfg := landlock.V7.BestEffort()
	isDir := func(p string) bool {
		fi, err := os.Stat(p)
		return err == nil && fi.IsDir()
	}
	if err := cfg.Restrict(LandlockRules(s.spec.Rootfs, isDir)...); err != nil {
		return fmt.Errorf("landlock: %w", err)
	}
	return nil
}

// LandlockABI reports the kernel's Landlock ABI version (0 if absent).
func LandlockABI() int {
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if errno != 0 {
		return 0
	}
	return int(v)
}
