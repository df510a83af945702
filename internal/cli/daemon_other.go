//go:build !linux

package cli

import (
	"context"
	"os"
	"os/exec"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// canAutostart: cortexd runs only on Linux; elsewhere the CLI is a client
// of a daemon CORTEX_HOST names and never starts one.
const canAutostart = false

func startDetached(*exec.Cmd) error {
	return errdefs.WithHint(errdefs.New(errdefs.Unsupported, "cortexd runs only on Linux"), "set CORTEX_HOST to the socket of a running cortexd")
}

func processGone(pid int) bool { return true }

func stopProcess(ctx context.Context, pid int, grace time.Duration) error {
	return errdefs.New(errdefs.Unsupported, "cortexd runs only on Linux")
}

func systemdUnit(pid int, unit string) bool { return false }

func lockFile(f *os.File) error {
	return errdefs.New(errdefs.Unsupported, "cortexd runs only on Linux")
}
