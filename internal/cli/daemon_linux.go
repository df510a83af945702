package cli

import (
	"os/exec"
	"syscall"
)

// canAutostart: cortexd runs on Linux, so only there does the CLI start one.
const canAutostart = true

// startDetached starts cmd in its own session, so it outlives the CLI.
func startDetached(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return cmd.Start()
}
