package cluster

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// Arg is cortexd's first argument for these modes.
const Arg = "cluster"

// runner runs a mode with the flags its FlagSet parsed.
type runner func(ctx context.Context, log *slog.Logger) error

type mode struct {
	summary string
	// flags returns the mode's flag set and what runs once it parsed.
	flags func() (*flag.FlagSet, runner)
}

var modes = map[string]mode{
	"fetch":           {"pull, verify and unpack the bundle (init container)", fetchFlags},
	"bus-sidecar":     {"serve the agent's bus socket over the cluster's NATS (sidecar)", busFlags},
	"egress-gateway":  {"the agent's egress proxy and NATS forward (Deployment)", gatewayFlags},
	"llm-gateway":     {"the project's LLM gateway (Deployment)", llmFlags},
	"seccomp-install": {"install seccomp profiles for the kubelet (DaemonSet)", seccompFlags},
}

// Parse parses args for mode, as Main does, without running it.
func Parse(modeName string, args []string) error {
	m, ok := modes[modeName]
	if !ok {
		return errdefs.New(errdefs.InvalidArgument, "unknown mode %q", modeName)
	}
	fs, _ := m.flags()
	return parse(fs, args)
}

// Main runs "cortexd cluster MODE [flags]" and returns the exit code.
// Logs are JSON lines on stderr, as container logs are read.
func Main(args []string, stderr io.Writer) int {
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		return errdefs.ExitInvalid
	}
	m, ok := modes[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "cortexd cluster: unknown mode %q\n", args[0])
		usage(stderr)
		return errdefs.ExitInvalid
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fs, run := m.flags()
	err := parse(fs, args[1:])
	if err == nil {
		err = run(ctx, log.With("mode", args[0]))
	}
	if err == nil || errors.Is(err, context.Canceled) {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return errdefs.ExitInvalid
	}
	fmt.Fprintf(stderr, "cortexd cluster %s: %v\n", args[0], err)
	if h := errdefs.HintOf(err); h != "" {
		fmt.Fprintf(stderr, "Try: %s\n", h)
	}
	return errdefs.ExitCode(err)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: cortexd cluster MODE [flags]   (the pods cortex render writes run these)")
	var names []string
	for n := range modes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-16s %s\n", n, modes[n].summary)
	}
}

// list is a repeatable string flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return errdefs.Wrap(errdefs.InvalidArgument, err)
	}
	if fs.NArg() > 0 {
		return errdefs.New(errdefs.InvalidArgument, "unexpected arguments %q", fs.Args())
	}
	return nil
}

func required(name, v string) error {
	if v == "" {
		return errdefs.New(errdefs.InvalidArgument, "--%s is required", name)
	}
	return nil
}
