//go:build !linux || !amd64

package kerneltest

import (
	"errors"
	"syscall"
)

const gateSupported = false

func gateCall(vector, nr, a1, a2, a3 int) (string, error) {
	return "", errors.New("the i386 gate exists only on linux/amd64")
}

func unixSignalName(s syscall.Signal) string { return s.String() }
