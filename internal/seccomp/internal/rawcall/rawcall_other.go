//go:build !linux || !amd64 || !cgo

package rawcall

import "syscall"

// Int80 is only available on linux/amd64 with cgo.
func Int80(nr, a1, a2, a3 int) (int, error) { return 0, syscall.ENOSYS }

// CloneAndReap is only available on linux/amd64 with cgo.
func CloneAndReap(flags uintptr) (int, error) { return 0, syscall.ENOSYS }
