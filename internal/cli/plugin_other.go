//go:build !unix

package cli

import (
	"errors"
	"fmt"
	"os/exec"
)

// runPlugin runs the plugin as a child and returns its exit code.
func runPlugin(e *env, path, name string, args []string) int {
	cmd := exec.Command(path, args...)
	cmd.Env = pluginEnv(e, name)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = e.stdin, e.stdout, e.stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "cortex: run plugin %s: %v\n", path, err)
		return 1
	}
	return 0
}
