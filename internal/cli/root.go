// Package cli is the cortex command line: one file per subcommand, each a
// thin layer over the API client (internal/api). Invoked as cortex-ops
// (argv[0]) it is the operations CLI. Errors go to stderr with a "Try:"
// hint and the exit codes of errdefs: 0 success, 1 runtime error, 2
// invalid input.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// exitError carries an exit code without a message (the command already
// said what happened).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// env is what every command shares.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	cfg            config.Env
	client         *api.Client
}

func (e *env) tty(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Main runs the CLI with args (args[0] is the program name) and returns
// the process exit code.
func Main(args []string) int {
	return run(&env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, cfg: config.FromEnv()}, args)
}

func run(e *env, args []string) int {
	var root *cobra.Command
	if filepath.Base(args[0]) == "cortex-ops" {
		root = opsRoot(e)
	} else {
		root = cortexRoot(e)
	}
	if code, handled := dispatchPlugin(e, root, args[1:]); handled {
		return code
	}
	root.SetArgs(args[1:])
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	printError(e.stderr, root.Name(), err)
	return errdefs.ExitCode(err)
}

func printError(w io.Writer, prog string, err error) {
	msg := err.Error()
	fmt.Fprintf(w, "%s: %s\n", prog, strings.TrimRight(msg, "\n"))
	if h := errdefs.HintOf(err); h != "" {
		fmt.Fprintf(w, "Try: %s\n", h)
	}
}

func cortexRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:           "cortex",
		Short:         "Run swarms of isolated AI agents",
		Long:          "cortex runs the agents a cortex.yaml declares, each in its own sandbox, on the local cortexd daemon\n(started in the background when none answers), or on a remote one (CORTEX_HOST=https://HOST:PORT).",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return errdefs.WithHint(errdefs.Wrap(errdefs.InvalidArgument, err), c.CommandPath()+" --help")
	})
	root.AddCommand(
		runCmd(e), listCmd(e), killCmd(e), logsCmd(e), suspendCmd(e), resumeCmd(e), inspectCmd(e),
		stopCmd(e), rmCmd(e), validateCmd(e), bundleCmd(e), versionCmd(e), llmCmd(e), busCmd(e),
		pushCmd(e), pullCmd(e), keyCmd(e), renderCmd(e), deployCmd(e), initCmd(e),
		authCmd(e), auditCmd(e),
		doctorCmd(e), pluginCmd(e, func() *cobra.Command { return root }),
	)
	return root
}

func opsRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:           "cortex-ops",
		Short:         "Cortex operations: diagnostics, repair, updates, plugins",
		Long:          "cortex-ops is the operations CLI of Cortex (the same binary as cortex, invoked by this name):\nhealth checks, repairs with undo, updates with automatic rollback, plugins, and a site's bundle registry.\nSee docs/ops.md.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(versionCmd(e))
	root.AddCommand(registryCmd(e))
	root.AddCommand(doctorCmd(e), repairCmd(e), updateCmd(e), rollbackCmd(e), pluginCmd(e, func() *cobra.Command { return root }))
	return root
}

// args validators that answer with exit code 2.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "%s takes %s", c.CommandPath(), what), "cortex "+c.Name()+" --help")
		}
		return nil
	}
}

func minArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) < n {
			return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "%s needs %s", c.CommandPath(), what), "cortex "+c.Name()+" --help")
		}
		return nil
	}
}

func maxArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) > n {
			return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "%s takes %s", c.CommandPath(), what), "cortex "+c.Name()+" --help")
		}
		return nil
	}
}
