package kerneltest

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

const gateSupported = true

// int80 and int81 enter the kernel through int $0x80 and int $0x81 with
// nr in eax and the arguments in ebx, ecx, edx, and return eax.
// Assembly, not cgo: a fault in cgo code is fatal to the Go runtime.
func int80(nr, a1, a2, a3 uintptr) uintptr
func int81(nr, a1, a2, a3 uintptr) uintptr

// gateCall makes the call in this (child) process. The kernel's default
// action for SIGSEGV is restored first, so a closed gate kills the
// process with SIGSEGV as it would kill a C program (the Go runtime would
// otherwise catch the fault and exit 2); core dumps are turned off.
func gateCall(vector, nr, a1, a2, a3 int) (string, error) {
	var call func(nr, a1, a2, a3 uintptr) uintptr
	switch vector {
	case VectorIA32:
		call = int80
	case VectorClosed:
		call = int81
	default:
		return "", fmt.Errorf("vector %#x: only %#x and %#x", vector, VectorIA32, VectorClosed)
	}
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return "", fmt.Errorf("prctl dumpable: %w", err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		return "", fmt.Errorf("rlimit core: %w", err)
	}
	// struct kernel_sigaction { handler, flags, restorer, mask }: zero is
	// SIG_DFL.
	var act [4]uint64
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGSEGV), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0); e != 0 {
		return "", fmt.Errorf("rt_sigaction SIGSEGV: %w", e)
	}
	r := int32(call(uintptr(nr), uintptr(a1), uintptr(a2), uintptr(a3)))
	if r < 0 && r > -4096 {
		return unix.ErrnoName(unix.Errno(-r)), nil
	}
	return "ok", nil
}

func unixSignalName(s unix.Signal) string { return unix.SignalName(s) }
