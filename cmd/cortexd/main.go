// Command cortexd is the Cortex daemon. It also serves as the sandbox init
// ("cortexd init", re-exec'd by the daemon inside an agent's namespaces)
// and, on Kubernetes, as the pods' in-cluster parts ("cortexd cluster").
// All logic lives in internal/daemon and internal/sandbox.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/cortexrt/cortex/internal/cluster"
	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/daemon"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/sandbox"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case sandbox.InitArg:
			sandbox.Init()
		case sandbox.UsernsHoldArg:
			sandbox.HoldUserns()
		case cluster.Arg:
			os.Exit(cluster.Main(os.Args[2:], os.Stderr))
		case daemon.OpsArg:
			os.Exit(daemon.OpsMain(os.Args[2:], config.FromEnv(), os.Stdout, os.Stderr))
		}
	}
	env := config.FromEnv()
	fs := flag.NewFlagSet("cortexd", flag.ContinueOnError)
	root := fs.String("root", env.Root, "prefix for every host path (default: CORTEX_ROOT, else /)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	format := fs.String("log-format", "text", "text or json")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(errdefs.ExitInvalid)
	}
	if *version {
		fmt.Println("cortexd", daemon.Version)
		return
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "cortexd: --log-level %q: use debug, info, warn or error\n", *level)
		os.Exit(errdefs.ExitInvalid)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if *format == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := daemon.Run(ctx, daemon.Options{Paths: config.NewPaths(*root), Env: env, Logger: slog.New(h)})
	if err != nil {
		fmt.Fprintf(os.Stderr, "cortexd: %v\n", err)
		if hint := errdefs.HintOf(err); hint != "" {
			fmt.Fprintf(os.Stderr, "Try: %s\n", hint)
		}
		os.Exit(errdefs.ExitCode(err))
	}
}
