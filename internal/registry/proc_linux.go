package registry

import (
	"os/exec"
	"syscall"
)

// setProcAttr ties the registry's life to ours: if cortex-ops dies, the
// kernel sends the registry SIGTERM.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
