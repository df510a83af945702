//go:build unix

package cli

import (
	"fmt"
	"syscall"
)

// runPlugin replaces this process with the plugin (its exit code and
// signals are then the command's, as with git).
func runPlugin(e *env, path, name string, args []string) int {
	err := syscall.Exec(path, append([]string{path}, args...), pluginEnv(e, name))
	fmt.Fprintf(e.stderr, "cortex: run plugin %s: %v\n", path, err)
	return 1
}
