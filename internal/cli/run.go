package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/logs"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/oci"
	"github.com/spf13/cobra"
)

func runCmd(e *env) *cobra.Command {
	var opts runOptions
	cmd := &cobra.Command{
		Use:   "run [-d] [--verify-key KEY] [--llm-record DIR | --llm-replay DIR] [--learn [--write]] [PATH|REF]",
		Short: "Run a swarm from a .cortex bundle, a project directory, a cortex.yaml or a registry",
		Long: `Run a swarm. PATH is a .cortex bundle, a project directory (with a cortex.yaml) or a
cortex.yaml file; it defaults to the current directory. A directory is bundled on the fly.

An argument that names nothing on disk and starts with a registry host (one with a dot or
a port, or localhost) is a registry reference, REF: host[:port]/repository[:tag] or
host[:port]/repository@sha256:DIGEST; oci://REF forces that reading. The bundle is
pulled and verified against its digest (see cortex pull) before it runs. With
--verify-key KEY it must also carry a valid signature by that ed25519 public key.

Attached (the default), the agents' output is shown with coloured name prefixes until every
agent has ended; Ctrl-C stops the swarm (a second Ctrl-C kills it at once). The exit code
is non-zero when any agent failed. With -d the command returns once the agents started.

LLM calls through the gateway can be recorded and replayed. --llm-record DIR sends them to
the providers and, when the run ends, writes every answer (request, response, stream events
with their timing; never a key or token) into DIR as cassette files, one <key>.json per
request. --llm-replay DIR answers every call from DIR without any provider, key or network,
streams at their recorded pace; a request DIR lacks fails with an error naming it. A
manifest's llm.replay directory replays the same way when neither flag is given.

--learn runs the swarm with every wall up and, when it ends, shows what each agent was
refused (egress hosts and ports, bus channels, LLM aliases, paths under the project) as the
capability lines that would have allowed it: a diff of cortex.yaml. --learn --write applies
the diff in place, keeping comments and order. Learning only observes: nothing is allowed
that the manifest does not allow.`,
		Args: maxArgs(1, "at most one PATH"),
		RunE: func(c *cobra.Command, args []string) error {
			path := "."
			if len(args) == 1 {
				path = args[0]
			}
			return e.run(c.Context(), path, opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.detach, "detach", "d", false, "start the agents and return")
	cmd.Flags().StringVar(&opts.verifyKey, "verify-key", "", "require a registry signature by this ed25519 public key (PEM)")
	cmd.Flags().StringVar(&opts.llmRecord, "llm-record", "", "record the LLM answers into cassette files in `DIR`")
	cmd.Flags().StringVar(&opts.llmReplay, "llm-replay", "", "answer LLM calls from the cassette files in `DIR`, with no provider")
	cmd.Flags().BoolVar(&opts.learn, "learn", false, "show the capability lines the agents lacked, as a diff of cortex.yaml")
	cmd.Flags().BoolVar(&opts.write, "write", false, "with --learn: apply the diff to cortex.yaml")
	return cmd
}

// runOptions are run's flags.
type runOptions struct {
	detach    bool
	verifyKey string
	// llmRecord and llmReplay are cassette directories.
	llmRecord, llmReplay string
	// learn and write: --learn, --write.
	learn, write bool
}

// runSource is what a PATH names.
type runSource struct {
	bundleFile   string // a .cortex file
	dir          string // project directory
	manifestPath string
	ref          string // a registry reference (see oci.LooksLikeReference)
}

func resolveRunSource(path string) (runSource, error) {
	if strings.HasPrefix(path, oci.Scheme) {
		return runSource{ref: path}, nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return runSource{}, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && oci.LooksLikeReference(path) {
			return runSource{ref: path}, nil
		}
		if errors.Is(err, os.ErrNotExist) {
			return runSource{}, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "%s does not exist", path), "pass a .cortex bundle, a project directory, a cortex.yaml or a registry reference (host[:port]/repo:tag)")
		}
		return runSource{}, err
	}
	switch {
	case fi.IsDir():
		for _, n := range manifest.FileNames {
			if _, err := os.Stat(filepath.Join(abs, n)); err == nil {
				return runSource{dir: abs, manifestPath: filepath.Join(abs, n)}, nil
			}
		}
		return runSource{}, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "no cortex.yaml in %s", abs), "create one (see docs/manifest.md) or pass its path")
	case strings.HasSuffix(abs, ".yaml") || strings.HasSuffix(abs, ".yml"):
		return runSource{dir: filepath.Dir(abs), manifestPath: abs}, nil
	}
	return runSource{bundleFile: abs}, nil
}

// openUpload returns the bundle to send: the file itself, or a bundle
// made from the directory into a temporary file.
func (e *env) openUpload(ctx context.Context, src runSource, opts runOptions) (*os.File, func(), error) {
	if src.ref != "" {
		return e.pullUpload(ctx, src.ref, opts.verifyKey)
	}
	if opts.verifyKey != "" {
		return nil, nil, refSourceErr(src.bundleFile + src.manifestPath)
	}
	if src.bundleFile != "" {
		f, err := os.Open(src.bundleFile)
		return f, func() {}, err
	}
	// Check the manifest here first: errors name the user's own file.
	if err := checkManifestFile(src.manifestPath); err != nil {
		return nil, nil, err
	}
	tmp, err := os.CreateTemp("", "cortex-run-*.cortex")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { tmp.Close(); os.Remove(tmp.Name()) }
	_, err = e.pack(ctx, src, tmp)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	if _, err := tmp.Seek(0, 0); err != nil {
		cleanup()
		return nil, nil, err
	}
	return tmp, cleanup, nil
}

func checkManifestFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := manifest.Parse(f, displayPath(path)); err != nil {
		return errdefs.Wrap(errdefs.InvalidArgument, err)
	}
	return nil
}

// displayPath shortens path relative to the working directory.
func displayPath(path string) string {
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, path); err == nil && !strings.HasPrefix(rel, "..") {
			return rel
		}
	}
	return path
}

func (e *env) run(ctx context.Context, path string, opts runOptions) error {
	detach := opts.detach
	if err := checkLLMFlags(opts); err != nil {
		return err
	}
	src, err := resolveRunSource(path)
	if err != nil {
		return err
	}
	if err := checkLearnFlags(opts, src); err != nil {
		return err
	}
	f, cleanup, err := e.openUpload(ctx, src, opts)
	if err != nil {
		return err
	}
	defer cleanup()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	c, err := e.connect(ctx, true)
	if err != nil {
		return err
	}
	since := time.Now().Add(-time.Millisecond)
	name := filepath.Base(f.Name())
	if src.ref != "" {
		name = src.ref
	}
	dir := src.dir
	if c.Remote() && dir != "" {
		// The daemon cannot see this machine's directory: the project
		// runs as the bundle just made, its write grants under the
		// daemon's data directory.
		dir = ""
		if e.tty(e.stderr) {
			fmt.Fprintf(e.stderr, "Remote daemon %s: %s runs as a bundle; its write grants live on the daemon's host.\n", c.Addr, src.dir)
		}
	}
	req := api.RunRequest{SourceDir: dir, Name: name, Learn: opts.learn}
	switch {
	case opts.llmRecord != "":
		req.LLMMode = "record"
	case opts.llmReplay != "":
		req.LLMMode = "replay"
		project, err := projectOf(f.Name())
		if err != nil {
			return err
		}
		if req.LLMCassette, err = e.uploadCassettes(ctx, c, project, opts.llmReplay); err != nil {
			return err
		}
	}
	resp, err := c.RunWith(ctx, f, fi.Size(), req)
	if err != nil {
		return err
	}
	if detach {
		fmt.Fprintf(e.stdout, "%s\n", resp.Project)
		if e.tty(e.stderr) {
			fmt.Fprintf(e.stderr, "started %d agent(s): %s (digest %s)\n", len(resp.Agents), strings.Join(resp.Agents, ", "), short(resp.Digest))
		}
		return nil
	}
	err = e.attach(ctx, c, resp, since)
	if opts.learn {
		if lerr := e.reportLearned(context.WithoutCancel(ctx), c, resp.Project, src, opts.write); lerr != nil {
			printError(e.stderr, "cortex", lerr)
			if err == nil {
				err = exitError{errdefs.ExitCode(lerr)}
			}
		}
	}
	if opts.llmRecord != "" {
		if serr := e.saveRecording(context.WithoutCancel(ctx), c, resp.Project, opts.llmRecord); serr != nil {
			fmt.Fprintf(e.stderr, "cortex: saving the recording: %v\n", serr)
			if err == nil {
				err = serr
			}
		}
	}
	return err
}

func short(digest string) string {
	d := strings.TrimPrefix(digest, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

// attach shows the project's output until it ends; Ctrl-C stops it.
func (e *env) attach(ctx context.Context, c *api.Client, resp api.RunResponse, since time.Time) error {
	width := 0
	for _, a := range resp.Agents {
		width = max(width, len(a))
	}
	color := e.tty(e.stdout)
	var outMu sync.Mutex
	onLog := func(rec logs.Record) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintln(e.stdout, logs.FormatText(rec, color, width))
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	interrupted := make(chan struct{}, 1)
	go func() {
		n := 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-sigs:
				n++
				select {
				case interrupted <- struct{}{}:
				default:
				}
				switch n {
				case 1:
					fmt.Fprintf(e.stderr, "Stopping %s (press Ctrl-C again to kill)...\n", resp.Project)
					go func() { _ = c.Stop(context.Background(), resp.Project, 0) }()
				case 2:
					fmt.Fprintf(e.stderr, "Killing %s...\n", resp.Project)
					go func() { _ = c.Stop(context.Background(), resp.Project, time.Nanosecond) }()
				default:
					cancel()
					return
				}
			}
		}
	}()
	end, err := c.Attach(ctx, resp.Project, since, onLog, nil)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return exitError{130}
		}
		return err
	}
	stoppedByUser := false
	select {
	case <-interrupted:
		stoppedByUser = true
	default:
	}
	if len(end.Failed) > 0 {
		var parts []string
		for _, a := range end.Agents {
			if a.State == api.Failed {
				parts = append(parts, fmt.Sprintf("%s (%s)", a.Agent, a.Reason))
			}
		}
		fmt.Fprintf(e.stderr, "%s: failed: %s\n", resp.Project, strings.Join(parts, ", "))
		return exitError{1}
	}
	if stoppedByUser {
		// Stopped cleanly, but because the user asked: like a shell, 128+SIGINT.
		return exitError{130}
	}
	return nil
}
