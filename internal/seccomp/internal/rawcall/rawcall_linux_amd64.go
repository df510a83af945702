//go:build linux && amd64 && cgo

package rawcall

/*
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

// int80 enters the kernel through the i386 gate: nr in eax, arguments in
// ebx, ecx, edx. The kernel sees AUDIT_ARCH_I386 and i386 numbers.
static int int80(int nr, int a1, int a2, int a3) {
	long ret;
	__asm__ volatile ("int $0x80"
		: "=a"(ret)
		: "a"((long)nr), "b"((long)a1), "c"((long)a2), "d"((long)a3)
		: "memory", "r8", "r9", "r10", "r11");
	return (int)ret;
}

// clone_and_reap calls clone(flags|SIGCHLD) directly (no CLONE_VM, so the
// child has its own copy of memory), makes the child exit with status 0 at
// once and reaps it. It returns the child's pid or -errno.
static long clone_and_reap(unsigned long flags) {
	long pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
	if (pid < 0)
		return -errno;
	if (pid == 0)
		_exit(0);
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return pid;
}
*/
import "C"

import "syscall"

// Int80 makes i386 system call nr with up to three arguments through
// int $0x80 and returns its result, or the errno it failed with.
func Int80(nr, a1, a2, a3 int) (int, error) {
	r := int(C.int80(C.int(nr), C.int(a1), C.int(a2), C.int(a3)))
	if r < 0 && r > -4096 {
		return 0, syscall.Errno(-r)
	}
	return r, nil
}

// CloneAndReap clones a child with flags (SIGCHLD is added), lets it exit at
// once and reaps it; it returns the child's pid or the errno clone failed
// with.
func CloneAndReap(flags uintptr) (int, error) {
	r := int64(C.clone_and_reap(C.ulong(flags)))
	if r < 0 {
		return 0, syscall.Errno(-r)
	}
	return int(r), nil
}
