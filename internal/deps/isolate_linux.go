package deps

import (
	"os"
	"os/exec"
	"syscall"
)

// isolateNetwork makes cmd start in a new network namespace with no
// interface up (as root directly, else inside a new user namespace
// mapping only the caller), so nothing it does reaches a network. It
// reports whether it set that up; starting fails where the host allows
// no such namespace.
func isolateNetwork(cmd *exec.Cmd) bool {
	attr := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if uid := os.Geteuid(); uid != 0 {
		gid := os.Getegid()
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	}
	cmd.SysProcAttr = attr
	return true
}
