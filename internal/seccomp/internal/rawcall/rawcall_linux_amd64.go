//go:build linux && amd64 && cgo

package rawcall

/*
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

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
