//go:build !linux

package cli

import (
	"os/exec"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// canAutostart: cortexd runs only on Linux; elsewhere the CLI is a client
// of a daemon CORTEX_HOST names and never starts one.
const canAutostart = false

func startDetached(*exec.Cmd) error {
	return errdefs.WithHint(errdefs.New(errdefs.Unsupported, "cortexd runs only on Linux"), "set CORTEX_HOST to the socket of a running cortexd")
}
