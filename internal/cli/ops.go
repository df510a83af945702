package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/errdefs"
)

// opsRunner answers doctor and repair from the daemon when one answers,
// else (Linux, local root) from `cortexd ops`, which runs the same checks
// without a daemon. The CLI links neither SQLite nor the kernel probes.
type opsRunner struct {
	e      *env
	client *api.Client // nil: offline
	// daemonErr is why no daemon answered (offline only).
	daemonErr error
	version   *api.VersionInfo
}

// opsRunner never starts a daemon: doctor looks at the host as it is.
func (e *env) opsRunner(ctx context.Context) (*opsRunner, error) {
	r := &opsRunner{e: e}
	c, err := e.connect(ctx, false)
	if err == nil {
		vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		v, verr := c.Version(vctx)
		if verr == nil {
			r.client, r.version = c, &v
			return r, nil
		}
		err = verr
	}
	if !errdefs.IsUnavailable(err) {
		return nil, err
	}
	r.daemonErr = err
	if ep, eperr := e.cfg.Endpoint(); !canAutostart || eperr != nil || !ep.Default {
		return nil, errdefs.WithHint(errdefs.Wrap(errdefs.Unavailable, fmt.Errorf("no daemon answers at %s, and without one the checks run only on the daemon's host: %w", ep, err)),
			"run cortex-ops on the daemon's host, or start the daemon")
	}
	return r, nil
}

func (r *opsRunner) offline() bool { return r.client == nil }

// cortexdOps runs `cortexd ops ARGS` and decodes its JSON into out.
func (e *env) cortexdOps(ctx context.Context, out any, args ...string) error {
	bin, err := daemonBinary(e.cfg)
	if err != nil {
		return err
	}
	full := append([]string{"ops"}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if runErr != nil {
		var eb api.ErrorBody
		if json.Unmarshal(stdout.Bytes(), &eb) == nil && eb.Error != "" {
			return &errdefs.Error{Cat: errdefs.Category(eb.Category), Msg: eb.Error, Hint: eb.Hint}
		}
		return fmt.Errorf("%s ops %s: %v: %s", bin, strings.Join(args, " "), runErr, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		return fmt.Errorf("%s ops: %w", bin, err)
	}
	return nil
}

func queryArgs(q api.ChecksQuery) []string {
	var args []string
	for _, c := range q.Checks {
		args = append(args, "--check", c)
	}
	for _, c := range q.Ignore {
		args = append(args, "--ignore", c)
	}
	for _, c := range q.Also {
		args = append(args, "--also", c)
	}
	if q.Critical {
		args = append(args, "--critical")
	}
	return args
}

func (r *opsRunner) checks(ctx context.Context, q api.ChecksQuery) (api.DoctorReport, error) {
	if !r.offline() {
		return r.client.OpsChecks(ctx, q)
	}
	var rep api.DoctorReport
	return rep, r.e.cortexdOps(ctx, &rep, append([]string{"checks"}, queryArgs(q)...)...)
}

func (r *opsRunner) list(ctx context.Context) ([]api.CheckInfo, error) {
	if !r.offline() {
		return r.client.OpsCheckList(ctx)
	}
	var out []api.CheckInfo
	return out, r.e.cortexdOps(ctx, &out, "checks", "--list")
}

func (r *opsRunner) repair(ctx context.Context, req api.RepairRequest) (api.RepairResponse, error) {
	if !r.offline() {
		return r.client.OpsRepair(ctx, req)
	}
	args := append([]string{"repair"}, queryArgs(api.ChecksQuery{Checks: req.Checks, Ignore: req.Ignore, Also: req.Also})...)
	if req.DryRun {
		args = append(args, "--dry-run")
	}
	var out api.RepairResponse
	return out, r.e.cortexdOps(ctx, &out, args...)
}

func (r *opsRunner) transactions(ctx context.Context) ([]api.Txn, error) {
	if !r.offline() {
		return r.client.OpsTransactions(ctx)
	}
	var out []api.Txn
	return out, r.e.cortexdOps(ctx, &out, "transactions")
}

func (r *opsRunner) undo(ctx context.Context, id string, force bool) (api.Txn, error) {
	if !r.offline() {
		return r.client.OpsUndo(ctx, id, force)
	}
	args := []string{"undo"}
	if force {
		args = append(args, "--force")
	}
	var out api.Txn
	return out, r.e.cortexdOps(ctx, &out, append(args, id)...)
}

// localSocket is the API socket of the daemon serving CORTEX_ROOT on this
// host: the ops commands act on the host they run on.
func (e *env) localSocket() string { return config.NewPaths(e.cfg.Root).Socket }
