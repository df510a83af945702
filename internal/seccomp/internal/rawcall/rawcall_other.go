//go:build !linux || !amd64 || !cgo

package rawcall

import "syscall"

// CloneAndReap is only available on linux/amd64 with cgo.
func CloneAndReap(flags uintptr) (int, error) { return 0, syscall.ENOSYS }
