package seccomp

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// Values from linux/seccomp.h.
const (
	seccompGetActionAvail = 2
	seccompRetErrno       = 0x00050000
	seccompRetAllow       = 0x7fff0000
	seccompModeStrict     = 1
)

// Probe reports whether this process can load a Cortex filter: the kernel
// has seccomp filter mode with the errno and allow actions, the process is
// not in strict mode, and the build has libseccomp. The error says what is
// missing (errdefs.Unsupported or errdefs.FailedPrecondition).
func Probe() error {
	mode, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0)
	if err != nil {
		return errdefs.WithHint(
			errdefs.Wrap(errdefs.Unsupported, fmt.Errorf("kernel has no seccomp: prctl(PR_GET_SECCOMP): %w", err)),
			"use a kernel built with CONFIG_SECCOMP and CONFIG_SECCOMP_FILTER")
	}
	if mode == seccompModeStrict {
		return errdefs.New(errdefs.FailedPrecondition, "process is in seccomp strict mode")
	}
	for _, act := range []struct {
		name string
		ret  uint32
	}{{"errno", seccompRetErrno}, {"allow", seccompRetAllow}} {
		ret := act.ret
		_, _, e := unix.Syscall(unix.SYS_SECCOMP, seccompGetActionAvail, 0, uintptr(unsafe.Pointer(&ret)))
		if e != 0 {
			return errdefs.WithHint(
				errdefs.Wrap(errdefs.Unsupported, fmt.Errorf("seccomp filter action %s unavailable: seccomp(SECCOMP_GET_ACTION_AVAIL): %w", act.name, e)),
				"use Linux 4.14 or later built with CONFIG_SECCOMP_FILTER")
		}
	}
	return checkLibrary()
}
