//go:build linux && cgo

package seccomp

import (
	"fmt"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// LoadProgram installs an already compiled filter (Filter.BPF's output)
// into every thread of the calling process at once (TSYNC), the way Load
// does, without libseccomp: the daemon compiles the profile once and each
// sandbox init only loads the program. The caller must have set
// no_new_privs or hold CAP_SYS_ADMIN. It cannot be undone.
func LoadProgram(prog []bpf.RawInstruction) error {
	if len(prog) == 0 || len(prog) > 4096 {
		return fmt.Errorf("load seccomp program: %d instructions", len(prog))
	}
	filters := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		filters[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filters)), Filter: &filters[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	if errno != 0 {
		return fmt.Errorf("load seccomp program: %w", errno)
	}
	if r != 0 {
		// With TSYNC a positive return is the id of a thread that could not
		// be synchronised; nothing was installed.
		return fmt.Errorf("load seccomp program: thread %d could not be synchronised", r)
	}
	if err := checkAllThreadsFiltered(); err != nil {
		return fmt.Errorf("load seccomp program: %w", err)
	}
	return nil
}
