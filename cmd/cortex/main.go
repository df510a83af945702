// Command cortex is the Cortex CLI (and, invoked as cortex-ops, the
// operations CLI). All logic lives in internal/cli.
package main

import (
	"os"

	"github.com/cortexrt/cortex/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args))
}
