// Package hooks runs lifecycle hooks: the executables in
// etc/cortex/hooks/<event>.d/, in name order, each with the event as one
// JSON object on stdin, a timeout, its own process group (killed whole on
// timeout) and its output logged line by line to the daemon's log.
//
// Hooks run as root, so a hook is run only if it, its directory and every
// directory above it are root's and writable by nobody else
// (internal/trust); an untrusted hook is never run and is reported. For
// a gating event (pre-run) anything short of every hook exiting 0 (a
// non-zero exit, a timeout, an untrusted hook) refuses; for the others a
// failure is logged and reported, never fatal.
//
// The package runs processes and nothing else: the daemon decides when
// each event fires (pre-run in project creation, agent-* from its event
// stream, pre-update and post-update when cortex-ops update asks).
package hooks

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/trust"
)

// The events. Each has a directory <event>.d under the hooks directory.
const (
	PreRun     = "pre-run"     // before a project's agents start; a failure refuses the run
	PostRun    = "post-run"    // after a project's agents were started
	AgentStart = "agent-start" // an agent is running (every run, restarts included)
	AgentExit  = "agent-exit"  // an agent's run ended (stopped or failed)
	AgentOOM   = "agent-oom"   // the kernel OOM-killed an agent
	PreUpdate  = "pre-update"  // cortex-ops update is about to restart the daemon
	PostUpdate = "post-update" // an update (or its rollback) finished
)

// Events lists every event.
var Events = []string{PreRun, PostRun, AgentStart, AgentExit, AgentOOM, PreUpdate, PostUpdate}

// Known reports whether event is one of Events.
func Known(event string) bool { return slices.Contains(Events, event) }

// maxOutput caps what is kept of a hook's output.
const maxOutput = 64 << 10

// Result is one hook's run.
type Result struct {
	Hook     string // file name
	Path     string
	ExitCode int // -1 when it did not exit by itself
	Output   string
	Duration time.Duration
	// Err says why it failed: non-zero exit, timeout, refused to run.
	Err error
}

// Runner runs the hooks under one directory.
type Runner struct {
	dir     string
	timeout time.Duration
	log     *slog.Logger
	env     []string
}

// New returns a runner for the hooks under dir (etc/cortex/hooks) with a
// timeout per hook; env is the hooks' environment (CORTEX_HOOK_EVENT is
// added).
func New(dir string, timeout time.Duration, log *slog.Logger, env []string) *Runner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{dir: dir, timeout: timeout, log: log, env: env}
}

// Dir is the directory of event's hooks.
func (r *Runner) Dir(event string) string { return filepath.Join(r.dir, event+".d") }

// Hooks lists event's hooks (paths, in name order): every non-hidden
// regular file or symlink in its directory.
func (r *Runner) Hooks(event string) []string {
	ents, err := os.ReadDir(r.Dir(event))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".") || strings.HasSuffix(n, "~") || e.IsDir() {
			continue
		}
		out = append(out, filepath.Join(r.Dir(event), n))
	}
	sort.Strings(out)
	return out
}

// Run runs every hook of event in order with payload (marshalled to JSON,
// with "event" and "time" added when absent) on stdin and returns what
// each did. It stops early only when ctx is done.
func (r *Runner) Run(ctx context.Context, event string, payload map[string]any) []Result {
	hooks := r.Hooks(event)
	if len(hooks) == 0 {
		return nil
	}
	in := r.input(event, payload)
	var out []Result
	for _, h := range hooks {
		if ctx.Err() != nil {
			break
		}
		res := r.runOne(ctx, event, h, in)
		out = append(out, res)
	}
	return out
}

func (r *Runner) input(event string, payload map[string]any) []byte {
	p := map[string]any{}
	for k, v := range payload {
		p[k] = v
	}
	if _, ok := p["event"]; !ok {
		p["event"] = event
	}
	if _, ok := p["time"]; !ok {
		p["time"] = time.Now().UTC().Format(time.RFC3339Nano)
	}
	b, _ := json.Marshal(p)
	return append(b, '\n')
}

// Refusal is a gating hook's refusal.
type Refusal struct {
	Event, Hook string
	Message     string
}

func (e *Refusal) Error() string {
	return fmt.Sprintf("%s hook %s refused: %s", e.Event, e.Hook, e.Message)
}

// Gate runs event's hooks and returns a *Refusal (category
// PermissionDenied) at the first one that does not exit 0: its message is
// the last line the hook wrote (stderr and stdout together), or why it
// failed. Later hooks do not run.
func (r *Runner) Gate(ctx context.Context, event string, payload map[string]any) ([]Result, error) {
	hooks := r.Hooks(event)
	in := r.input(event, payload)
	var out []Result
	for _, h := range hooks {
		res := r.runOne(ctx, event, h, in)
		out = append(out, res)
		if res.Err == nil {
			continue
		}
		msg := lastLine(res.Output)
		if msg == "" || res.ExitCode < 0 {
			msg = res.Err.Error()
		}
		ref := &Refusal{Event: event, Hook: res.Hook, Message: msg}
		return out, errdefs.WithHint(errdefs.Wrap(errdefs.PermissionDenied, ref),
			fmt.Sprintf("the %s hook %s decides; see it, and the daemon's log", event, res.Path))
	}
	return out, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			if len(l) > 500 {
				l = l[:500] + "..."
			}
			return l
		}
	}
	return ""
}

func (r *Runner) runOne(ctx context.Context, event, path string, in []byte) Result {
	res := Result{Hook: filepath.Base(path), Path: path, ExitCode: -1}
	log := r.log.With("hook", res.Hook, "event", event)
	if err := trust.Executable(path); err != nil {
		res.Err = fmt.Errorf("refused to run %s: %w", path, err)
		log.Error("hook not run", "err", res.Err)
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = append(append([]string{}, r.env...), "CORTEX_HOOK_EVENT="+event)
	cmd.Dir = "/"
	cmd.Stdin = bytes.NewReader(in)
	var buf capped
	cmd.Stdout, cmd.Stderr = &buf, &buf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		return nil
	}
	cmd.WaitDelay = time.Second
	start := time.Now()
	err := cmd.Run()
	res.Duration = time.Since(start)
	res.Output = buf.String()
	sc := bufio.NewScanner(strings.NewReader(res.Output))
	for sc.Scan() {
		log.Info("hook output", "line", sc.Text())
	}
	var ee *exec.ExitError
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		res.Err = fmt.Errorf("did not finish within %s; killed", r.timeout)
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitCode()
		res.Err = fmt.Errorf("exit status %d", res.ExitCode)
	case err != nil:
		res.Err = err
	default:
		res.ExitCode = 0
	}
	if res.Err != nil {
		log.Warn("hook failed", "err", res.Err, "took", res.Duration)
	} else {
		log.Debug("hook ran", "took", res.Duration)
	}
	return res
}

type capped struct {
	bytes.Buffer
}

func (c *capped) Write(p []byte) (int, error) {
	if room := maxOutput - c.Len(); room < len(p) {
		if room > 0 {
			c.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return c.Buffer.Write(p)
}
