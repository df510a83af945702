package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/errdefs"
	cupdate "github.com/cortexrt/cortex/internal/update"
	"github.com/spf13/cobra"
)

// cortex-ops update and rollback: install a verified release beside the
// running one (internal/update), restart the daemon on it while every
// agent keeps running (the daemon reattaches), check its health (doctor's
// critical checks, the agents' pids, a canary agent) and go back to the
// previous binaries by itself if any check fails within the deadline.
// Agents are never restarted.
//
// How the daemon is restarted depends on who runs it: under systemd (its
// cgroup is the unit's), `systemctl restart UNIT` (the unit must run
// usr/lib/cortex/current/cortexd: the health check verifies the daemon's
// binary and rolls back otherwise); else (the CLI's autostarted daemon, a
// test root) SIGTERM to the old daemon and the new binary started
// detached, as the autostart does.

type updater struct {
	e        *env
	paths    config.Paths
	layout   cupdate.Layout
	hist     cupdate.History
	deadline time.Duration
	canary   bool
	unit     string
	progress io.Writer
	// say gets the one-line outcome (stderr with --json, stdout else).
	say   io.Writer
	entry cupdate.Entry
	// started is the pid of a daemon this command started.
	started int
}

func (e *env) newUpdater(deadline time.Duration, canary bool, quiet, asJSON bool) *updater {
	p := config.NewPaths(e.cfg.Root)
	cfg, err := config.Load(p.ConfigFile)
	if err != nil || cfg == nil {
		cfg = config.Default()
	}
	if deadline <= 0 {
		deadline = cfg.Ops.UpdateDeadline
	}
	u := &updater{e: e, paths: p, layout: cupdate.Layout{ShareDir: p.ShareDir}, hist: cupdate.History{Path: filepath.Join(p.LibDir, "ops", "updates.json")},
		deadline: deadline, canary: canary, unit: cfg.Ops.SystemdUnit, progress: e.stderr, say: e.stdout}
	if asJSON {
		u.say = e.stderr
	}
	if quiet {
		u.progress = io.Discard
	}
	return u
}

// phase runs one named step, records it in the entry and reports it.
func (u *updater) phase(name string, fn func() (string, error)) error {
	fmt.Fprintf(u.progress, "==> %s\n", name)
	start := time.Now()
	detail, err := fn()
	ph := cupdate.Phase{Name: name, Status: "ok", Detail: detail, DurationMS: time.Since(start).Milliseconds()}
	if err != nil {
		ph.Status, ph.Detail = "failed", err.Error()
		fmt.Fprintf(u.progress, "    failed: %v\n", err)
	} else if detail != "" {
		fmt.Fprintf(u.progress, "    %s\n", detail)
	}
	u.entry.Phases = append(u.entry.Phases, ph)
	return err
}

// lock keeps two updates from running at once.
func (u *updater) lock() (func(), error) {
	dir := filepath.Join(u.paths.LibDir, "ops")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, errdefs.WithHint(errdefs.Wrap(errdefs.PermissionDenied, err), "run cortex-ops update as root")
	}
	f, err := os.OpenFile(filepath.Join(dir, "update.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, errdefs.New(errdefs.AlreadyExists, "another update or rollback is running on %s", u.paths.Root)
	}
	return func() { f.Close() }, nil
}

// daemonVersion runs `cortexd --version` and returns the version it
// prints ("cortexd 0.2.0" -> "0.2.0").
func daemonVersion(ctx context.Context, bin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %v", bin, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 || f[0] != "cortexd" {
		return "", fmt.Errorf("%s --version printed %q, not \"cortexd VERSION\"", bin, strings.TrimSpace(string(out)))
	}
	return f[1], nil
}

// running lists the agents with a process, by project/agent -> pid.
func running(ctx context.Context, c *api.Client) (map[string]int, error) {
	list, err := c.Agents(ctx, "", false)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, a := range list {
		if a.State == api.Running || a.State == api.Suspended {
			out[a.Project+"/"+a.Agent] = a.Pid
		}
	}
	return out, nil
}

func (u *updater) client() *api.Client { return api.NewClient(u.e.localSocket()) }

// restart stops the daemon pid and starts bin in its place.
func (u *updater) restart(ctx context.Context, pid int, bin string) (string, error) {
	if u.entry.Mode == "systemd" {
		out, err := exec.CommandContext(ctx, "systemctl", "restart", u.unit).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("systemctl restart %s: %v: %s", u.unit, err, strings.TrimSpace(string(out)))
		}
		return "systemctl restart " + u.unit, nil
	}
	if pid > 0 {
		if err := stopProcess(ctx, pid, 30*time.Second); err != nil {
			return "", err
		}
	}
	newPid, err := u.e.startDaemonBinary(ctx, u.client(), bin)
	u.started = newPid
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("stopped pid %d, started %s as pid %d", pid, bin, newPid), nil
}

// health checks the daemon that now answers: it runs bin at version, it
// kept every agent of before with its pid, doctor's critical checks pass,
// and (with the canary) a tiny agent runs.
func (u *updater) health(ctx context.Context, bin, version string, before map[string]int, canary bool) (string, error) {
	c := u.client()
	var v api.VersionInfo
	var err error
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		v, err = c.Version(pctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("the daemon did not answer before the deadline: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	u.started = v.Pid
	want, _ := filepath.EvalSymlinks(bin)
	if v.Executable != "" && want != "" && v.Executable != want {
		return "", fmt.Errorf("the daemon runs %s, not %s (under systemd the unit's ExecStart must be %s)", v.Executable, want, filepath.Join(u.paths.ShareDir, "current", "cortexd"))
	}
	if version != "" && v.Version != version {
		return "", fmt.Errorf("the daemon reports version %q, want %q", v.Version, version)
	}
	now, err := running(ctx, c)
	if err != nil {
		return "", fmt.Errorf("list agents: %w", err)
	}
	var lost []string
	for k, pid := range before {
		if now[k] != pid {
			lost = append(lost, fmt.Sprintf("%s (pid %d, now %d)", k, pid, now[k]))
		}
	}
	if len(lost) > 0 {
		sort.Strings(lost)
		return "", fmt.Errorf("agents not reattached with their pids: %s", strings.Join(lost, ", "))
	}
	rep, err := c.OpsChecks(ctx, api.ChecksQuery{Critical: true})
	if err != nil {
		return "", fmt.Errorf("doctor's critical checks: %w", err)
	}
	var failed []string
	for _, ch := range rep.Checks {
		if ch.Status == api.CheckFail {
			failed = append(failed, ch.ID+": "+ch.Evidence)
		}
	}
	if len(failed) > 0 {
		return "", fmt.Errorf("critical checks failed: %s", strings.Join(failed, "; "))
	}
	detail := fmt.Sprintf("cortexd %s (pid %d) answers; %d agent(s) kept their pids; %d critical checks pass", v.Version, v.Pid, len(before), len(rep.Checks))
	if canary {
		res, err := c.OpsCanary(ctx)
		if err != nil {
			return "", fmt.Errorf("canary: %w", err)
		}
		if !res.OK {
			return "", fmt.Errorf("canary (%s) failed: %s", res.Runtime, res.Error)
		}
		detail += fmt.Sprintf("; canary agent (%s) ran in %dms", res.Runtime, res.DurationMS)
	}
	return detail, nil
}

// switchTo points current at target, restarts the daemon on it and checks
// its health within the deadline; on failure it goes back to back (the
// version that ran) the same way. It returns the health error (nil on
// success) and, separately, an error of the way back.
func (u *updater) switchTo(ctx context.Context, oldPid int, target cupdate.Version, back cupdate.Version, before map[string]int) (healthErr, backErr error) {
	bin := u.layout.Binary(target.ID, cupdate.DaemonName)
	hctx, cancel := context.WithTimeout(ctx, u.deadline)
	defer cancel()
	healthErr = u.phase("switch to "+target.ID, func() (string, error) {
		return "usr/lib/cortex/current -> versions/" + target.ID, u.layout.SetCurrent(target.ID)
	})
	if healthErr == nil {
		healthErr = u.phase("restart the daemon ("+u.entry.Mode+")", func() (string, error) { return u.restart(hctx, oldPid, bin) })
	}
	if healthErr == nil {
		healthErr = u.phase("health", func() (string, error) { return u.health(hctx, bin, target.Version, before, u.canary) })
	}
	if healthErr == nil {
		return nil, nil
	}
	// Back to the version that ran, with a deadline of its own.
	bctx, bcancel := context.WithTimeout(ctx, u.deadline)
	defer bcancel()
	backErr = u.phase("roll back to "+back.ID, func() (string, error) {
		if err := u.layout.SetCurrent(back.ID); err != nil {
			return "", err
		}
		pid := u.started
		if v, err := u.client().Version(bctx); err == nil {
			pid = v.Pid
		}
		if _, err := u.restart(bctx, pid, u.layout.Binary(back.ID, cupdate.DaemonName)); err != nil {
			return "", err
		}
		return u.health(bctx, u.layout.Binary(back.ID, cupdate.DaemonName), back.Version, before, false)
	})
	return healthErr, backErr
}

func (u *updater) record(ctx context.Context, outcome, reason string) {
	u.entry.Outcome, u.entry.Reason = outcome, reason
	if err := u.hist.Append(u.entry); err != nil {
		fmt.Fprintf(u.e.stderr, "cortex-ops: record the update history: %v\n", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c := u.client()
	msg := fmt.Sprintf("%s -> %s", u.entry.From.ID, u.entry.To.ID)
	if reason != "" {
		msg += ": " + reason
	}
	_ = c.OpsRecord(rctx, api.OpsRecord{Action: u.entry.Action, ID: u.entry.ID, Outcome: outcome, Message: msg})
	payload := map[string]any{"id": u.entry.ID, "action": u.entry.Action, "from": u.entry.From, "to": u.entry.To, "outcome": outcome, "reason": reason}
	if res, err := c.OpsHooks(rctx, "post-update", payload); err == nil {
		reportHooks(u.progress, res)
	}
}

func reportHooks(w io.Writer, res []api.HookResult) {
	for _, h := range res {
		if h.Error != "" {
			fmt.Fprintf(w, "    hook %s/%s: %s\n", h.Event, h.Hook, h.Error)
		} else {
			fmt.Fprintf(w, "    hook %s/%s ran\n", h.Event, h.Hook)
		}
	}
}

// current is the version the running daemon's binary belongs to,
// recording it as a version first if it belongs to none (the binaries
// installed before the first update).
func (u *updater) current(info api.VersionInfo) (cupdate.Version, error) {
	if id := u.layout.Owning(info.Executable); id != "" {
		return u.layout.Get(id)
	}
	self, err := os.Executable()
	if err != nil {
		return cupdate.Version{}, err
	}
	if info.Executable == "" {
		return cupdate.Version{}, errors.New("the daemon does not say which binary it runs (too old for cortex-ops update)")
	}
	return u.layout.Snapshot(self, info.Executable, info.Version)
}

func (u *updater) begin(ctx context.Context, action string) (*api.Client, api.VersionInfo, error) {
	u.entry = cupdate.Entry{ID: "upd-" + time.Now().UTC().Format("20060102-150405"), Time: time.Now().UTC(), Action: action, Mode: "exec"}
	c := u.client()
	vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := c.Version(vctx)
	if err == nil && systemdUnit(info.Pid, u.unit) {
		u.entry.Mode = "systemd"
	}
	return c, info, err
}

// doUpdate is cortex-ops update --from PATH.
func (u *updater) doUpdate(ctx context.Context, from string) (err error) {
	unlock, err := u.lock()
	if err != nil {
		return err
	}
	defer unlock()
	c, info, daemonErr := u.begin(ctx, "update")
	src := from
	var sums cupdate.Sums
	var newVersion string
	if err := u.phase("verify "+from, func() (string, error) {
		fi, err := os.Stat(from)
		if err != nil {
			return "", errdefs.Wrap(errdefs.InvalidArgument, err)
		}
		if !fi.IsDir() {
			tmp, err := os.MkdirTemp("", "cortex-update-")
			if err != nil {
				return "", err
			}
			defer func() {
				if err != nil {
					os.RemoveAll(tmp)
				}
			}()
			if err := cupdate.Unpack(from, tmp); err != nil {
				return "", err
			}
			src = tmp
		}
		if sums, err = cupdate.Verify(src); err != nil {
			return "", err
		}
		if newVersion, err = daemonVersion(ctx, filepath.Join(src, cupdate.DaemonName)); err != nil {
			return "", errdefs.Wrap(errdefs.InvalidArgument, err)
		}
		return fmt.Sprintf("SHA256SUMS match; cortexd %s", newVersion), nil
	}); err != nil {
		return err
	}
	if src != from {
		defer os.RemoveAll(src)
	}
	var nv cupdate.Version
	if err := u.phase("install", func() (string, error) {
		v, err := u.layout.Install(src, sums, newVersion)
		nv = v
		return "usr/lib/cortex/versions/" + v.ID, err
	}); err != nil {
		return err
	}
	u.entry.To = cupdate.Ref{ID: nv.ID, Version: nv.Version}
	if daemonErr != nil {
		if !errdefs.IsUnavailable(daemonErr) {
			return daemonErr
		}
		// No daemon: nothing to restart; the next start runs the new one.
		if err := u.layout.SetCurrent(nv.ID); err != nil {
			return err
		}
		u.entry.Phases = append(u.entry.Phases, cupdate.Phase{Name: "switch to " + nv.ID, Status: "ok", Detail: "no daemon runs: the next one started runs this version"})
		_ = u.hist.Append(func() cupdate.Entry { e := u.entry; e.Outcome = cupdate.OutcomeOK; return e }())
		fmt.Fprintf(u.say, "Installed %s (cortexd %s); no daemon runs, the next one started runs it.\n", nv.ID, nv.Version)
		return nil
	}
	var old cupdate.Version
	var before map[string]int
	if err := u.phase("record the running version", func() (string, error) {
		v, err := u.current(info)
		if err != nil {
			return "", err
		}
		old = v
		if before, err = running(ctx, c); err != nil {
			return "", err
		}
		return fmt.Sprintf("cortexd %s (pid %d) from %s; %d agent(s) running", info.Version, info.Pid, v.ID, len(before)), nil
	}); err != nil {
		return err
	}
	u.entry.From, u.entry.Agents = cupdate.Ref{ID: old.ID, Version: info.Version}, len(before)
	if old.ID == nv.ID {
		fmt.Fprintf(u.say, "cortexd already runs %s (%s); nothing to do.\n", nv.ID, nv.Version)
		return nil
	}
	_ = u.phase("pre-update hooks", func() (string, error) {
		res, err := c.OpsHooks(ctx, "pre-update", map[string]any{"id": u.entry.ID, "from": u.entry.From, "to": u.entry.To})
		reportHooks(u.progress, res)
		return fmt.Sprintf("%d hook(s)", len(res)), err
	})
	healthErr, backErr := u.switchTo(ctx, info.Pid, nv, old, before)
	switch {
	case healthErr == nil:
		u.record(ctx, cupdate.OutcomeOK, "")
		fmt.Fprintf(u.say, "Updated cortexd %s -> %s (%s); %d agent(s) kept running.\n", info.Version, nv.Version, nv.ID, len(before))
		return nil
	case backErr == nil:
		u.record(ctx, cupdate.OutcomeRolledBack, healthErr.Error())
		return errdefs.WithHint(errdefs.New(errdefs.FailedPrecondition, "update to %s (%s) failed its health check: %v; rolled back to %s (%s), %d agent(s) still running",
			nv.ID, nv.Version, healthErr, old.ID, old.Version, len(before)), "cortex-ops update --status shows the phases; the daemon's log says more")
	default:
		u.record(ctx, cupdate.OutcomeFailed, healthErr.Error()+"; rollback: "+backErr.Error())
		return errdefs.WithHint(errdefs.New(errdefs.Unavailable, "update to %s failed (%v) and so did the rollback to %s (%v)", nv.ID, healthErr, old.ID, backErr),
			"start the daemon by hand: "+u.layout.Binary(old.ID, cupdate.DaemonName)+" (agents keep running and are reattached)")
	}
}

// doRollback is cortex-ops rollback: back to the version before current.
func (u *updater) doRollback(ctx context.Context) error {
	unlock, err := u.lock()
	if err != nil {
		return err
	}
	defer unlock()
	_, info, err := u.begin(ctx, "rollback")
	if err != nil {
		return err
	}
	cur, err := u.current(info)
	if err != nil {
		return err
	}
	entries, err := u.hist.Load()
	if err != nil {
		return err
	}
	prev, ok := cupdate.Previous(entries, cur.ID)
	if !ok {
		return errdefs.WithHint(errdefs.New(errdefs.FailedPrecondition, "no earlier version to roll back to from %s", cur.ID), "cortex-ops update --status shows the history")
	}
	target, err := u.layout.Get(prev.ID)
	if err != nil {
		return err
	}
	before, err := running(ctx, u.client())
	if err != nil {
		return err
	}
	u.entry.From, u.entry.To, u.entry.Agents = cupdate.Ref{ID: cur.ID, Version: info.Version}, cupdate.Ref{ID: target.ID, Version: target.Version}, len(before)
	healthErr, backErr := u.switchTo(ctx, info.Pid, target, cur, before)
	switch {
	case healthErr == nil:
		u.record(ctx, cupdate.OutcomeOK, "")
		fmt.Fprintf(u.say, "Rolled back cortexd %s -> %s (%s); %d agent(s) kept running.\n", info.Version, target.Version, target.ID, len(before))
		return nil
	case backErr == nil:
		u.record(ctx, cupdate.OutcomeRolledBack, healthErr.Error())
		return errdefs.New(errdefs.FailedPrecondition, "rollback to %s failed its health check (%v); back on %s", target.ID, healthErr, cur.ID)
	default:
		u.record(ctx, cupdate.OutcomeFailed, healthErr.Error()+"; "+backErr.Error())
		return errdefs.New(errdefs.Unavailable, "rollback to %s failed (%v) and so did going back to %s (%v)", target.ID, healthErr, cur.ID, backErr)
	}
}

type updateStatus struct {
	Current  string            `json:"current"`
	Running  *api.VersionInfo  `json:"running,omitempty"`
	Versions []cupdate.Version `json:"versions"`
	History  []cupdate.Entry   `json:"history"`
}

func (u *updater) status(ctx context.Context, asJSON bool) error {
	st := updateStatus{Versions: []cupdate.Version{}, History: []cupdate.Entry{}}
	st.Current, _ = u.layout.Current()
	if vs, err := u.layout.List(); err == nil && vs != nil {
		st.Versions = vs
	}
	if h, err := u.hist.Load(); err != nil {
		return err
	} else if h != nil {
		st.History = h
	}
	vctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if v, err := u.client().Version(vctx); err == nil {
		st.Running = &v
	}
	if asJSON {
		return writeJSONTo(u.e.stdout, st)
	}
	w := u.e.stdout
	fmt.Fprintf(w, "Current: %s\n", dash(st.Current))
	if st.Running != nil {
		fmt.Fprintf(w, "Running: cortexd %s (pid %d, %s)\n", st.Running.Version, st.Running.Pid, st.Running.Executable)
	} else {
		fmt.Fprintln(w, "Running: no daemon answers")
	}
	fmt.Fprintln(w, "\nHistory (newest first):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tACTION\tFROM\tTO\tOUTCOME\tAGENTS\tREASON")
	for i := len(st.History) - 1; i >= 0; i-- {
		e := st.History[i]
		fmt.Fprintf(tw, "%s\t%s\t%s (%s)\t%s (%s)\t%s\t%d\t%s\n", e.ID, e.Action, dash(e.From.ID), dash(e.From.Version), e.To.ID, dash(e.To.Version), e.Outcome, e.Agents, dash(oneLine(e.Reason, 80)))
	}
	return tw.Flush()
}

func updateCmd(e *env) *cobra.Command {
	var from string
	var status, asJSON, noCanary bool
	var deadline time.Duration
	cmd := &cobra.Command{
		Use:   "update --from DIR|TARBALL [--deadline 2m] [--no-canary] | --status [--json]",
		Short: "Install new binaries and restart the daemon on them; agents keep running; automatic rollback",
		Long: `update verifies DIR (cortex, cortexd and SHA256SUMS in sha256sum's format; or a .tar.gz holding
them), installs the binaries under usr/lib/cortex/versions/<id> beside the running ones, restarts
the daemon on the new cortexd while every agent keeps running (the daemon reattaches to them),
then checks its health: the daemon answers with the new version, every agent kept its pid,
doctor's critical checks pass, and a canary agent runs. If any of that fails within the deadline
(ops.update_deadline, default 2m) it goes back to the previous binaries by itself. Agents are never
restarted. The pre-update and post-update hooks run around it. --status shows the history.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			u := e.newUpdater(deadline, !noCanary, asJSON && status, asJSON)
			if status {
				return u.status(c.Context(), asJSON)
			}
			if from == "" {
				return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "update needs --from DIR (or --status)"), "cortex-ops update --help")
			}
			err := u.doUpdate(c.Context(), from)
			if asJSON {
				_ = writeJSONTo(e.stdout, u.entry)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "the release: a directory (cortex, cortexd, SHA256SUMS) or a tarball of them")
	f.BoolVar(&status, "status", false, "show the installed versions and the update history")
	f.BoolVar(&asJSON, "json", false, "print JSON (the update's record, or with --status the history)")
	f.BoolVar(&noCanary, "no-canary", false, "skip the canary agent in the health check")
	f.DurationVar(&deadline, "deadline", 0, "how long the restart and health checks may take before rolling back (default ops.update_deadline)")
	return cmd
}

func rollbackCmd(e *env) *cobra.Command {
	var asJSON, noCanary bool
	var deadline time.Duration
	cmd := &cobra.Command{
		Use:   "rollback [--json]",
		Short: "Go back to the binaries that ran before the last update (agents keep running)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			u := e.newUpdater(deadline, !noCanary, false, asJSON)
			err := u.doRollback(c.Context())
			if asJSON {
				_ = writeJSONTo(e.stdout, u.entry)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the rollback's record as JSON")
	cmd.Flags().BoolVar(&noCanary, "no-canary", false, "skip the canary agent in the health check")
	cmd.Flags().DurationVar(&deadline, "deadline", 0, "how long the restart and health checks may take (default ops.update_deadline)")
	return cmd
}
