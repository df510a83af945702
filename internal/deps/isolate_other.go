//go:build !linux

package deps

import "os/exec"

// isolateNetwork is Linux only: elsewhere the check runs with the host's
// network (and installing for a Linux agent is refused anyway).
func isolateNetwork(*exec.Cmd) bool { return false }
