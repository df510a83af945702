package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/audit"
	"github.com/cortexrt/cortex/internal/bus"
	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/doctor"
	"github.com/cortexrt/cortex/internal/egress"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/events"
	"github.com/cortexrt/cortex/internal/hooks"
	"github.com/cortexrt/cortex/internal/llm"
	"github.com/cortexrt/cortex/internal/store"
	"github.com/cortexrt/cortex/internal/supervisor"
	"github.com/cortexrt/cortex/internal/txn"
)

// The operations side of the daemon: doctor's checks that need its
// subsystems, repair, hooks and the canary. The same checks run in
// `cortexd ops` when no daemon does (opsEnv without the running
// subsystems).

// opsEnv is what checks and repairs work with: the running daemon's
// subsystems, or (offline) what can be opened without a daemon.
type opsEnv struct {
	paths   config.Paths
	cfg     *config.Config
	env     config.Env
	running bool
	source  string // "daemon" or "offline"
	state   doctor.State
	egress  *egress.Gateway // nil offline: one is made for the check
	bus     *bus.Server     // nil offline
	llm     *llm.Gateway    // nil offline
	txns    *txn.Store
	// auditVerify verifies the audit log (nil: no check).
	auditVerify func(ctx context.Context) (string, error)
}

// verifyAudit verifies the audit log under the root's
// var/lib/cortex/audit, as `cortex audit verify` does.
func verifyAudit(p config.Paths) func(context.Context) (string, error) {
	dir := filepath.Join(p.LibDir, "audit")
	return func(context.Context) (string, error) {
		if _, err := os.Stat(filepath.Join(dir, audit.VerifierFile)); errors.Is(err, fs.ErrNotExist) {
			return "no audit log yet (no daemon has run here)", nil
		}
		res, err := audit.Verify(audit.Dir(dir), audit.VerifyOptions{})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d entries in %d segments verify; %d signed checkpoints", res.Entries, res.Segments, res.Checkpoints), nil
	}
}

// opsDir is where repair transactions live (root's only).
func opsDir(p config.Paths) string { return filepath.Join(p.LibDir, "ops") }

func txnDir(p config.Paths) string { return filepath.Join(opsDir(p), "transactions") }

// checks lists every check this side runs, in report order.
func (o *opsEnv) checks() []doctor.Check {
	exe, _ := os.Executable()
	h := &doctor.Host{
		Paths: o.paths, Config: o.cfg, Running: o.running, PyenvRoot: o.env.PyenvRoot,
		CgroupParent: cgroupParent(o.paths.Root), Executable: exe, State: o.state, UIDBase: 1600000,
	}
	cs := doctor.Builtin(h)
	cs = append(cs, o.checkSQLite(), o.checkEgressGateway(), o.checkEgressDNS(), o.checkBus(), o.checkLLM(), o.checkAudit())
	cs = append(cs, doctor.Plugins(filepath.Join(o.paths.PluginsDir, "checks"), doctor.PluginEnv(o.paths.Root, o.paths.Socket))...)
	return cs
}

func (o *opsEnv) options(q api.ChecksQuery) doctor.Options {
	return doctor.Options{Only: q.Checks, Ignore: q.Ignore, Critical: q.Critical, Timeout: o.cfg.Ops.CheckTimeout, Source: o.source, Known: q.Also}
}

func (o *opsEnv) report(ctx context.Context, q api.ChecksQuery) (api.DoctorReport, error) {
	res, err := doctor.Run(ctx, o.checks(), o.options(q))
	if err != nil {
		return api.DoctorReport{}, err
	}
	rep := api.DoctorReport{Schema: api.DoctorSchema, Version: Version, Time: time.Now().UTC(), Root: o.paths.Root, Runner: o.source, Checks: res}
	rep.Tally()
	return rep, nil
}

func (o *opsEnv) repair(ctx context.Context, req api.RepairRequest) (api.RepairResponse, error) {
	res, err := doctor.Repair(ctx, o.checks(), o.options(api.ChecksQuery{Checks: req.Checks, Ignore: req.Ignore, Also: req.Also}), o.txns, req.DryRun)
	if err != nil {
		return api.RepairResponse{}, err
	}
	out := api.RepairResponse{DryRun: req.DryRun, Transactions: []api.Txn{}, Manual: res.Manual, Failed: res.Failed, Runner: o.source}
	for _, t := range res.Txns {
		out.Transactions = append(out.Transactions, apiTxn(t))
	}
	return out, nil
}

func apiTxn(t *txn.Txn) api.Txn {
	out := api.Txn{ID: t.ID, Time: t.Time, Source: t.Source, Check: t.Check, Description: t.Description, State: t.State, Error: t.Error, UndoneAt: t.UndoneAt, Changes: []api.TxnChange{}}
	for _, c := range t.Changes {
		out.Changes = append(out.Changes, api.TxnChange{Kind: string(c.Kind), Path: c.Path, Description: c.String(), Applied: c.Applied, Undone: c.Undone})
	}
	return out
}

// The daemon's checks.

func (o *opsEnv) checkSQLite() doctor.Check {
	path := filepath.Join(o.paths.LibDir, "state.db")
	return &doctor.Func{Meta: doctor.Info{ID: "sqlite.integrity", Title: "the state database is sound (SQLite quick_check)", Critical: true},
		RunFunc: func(ctx context.Context) doctor.Result {
			problems, err := store.QuickCheck(ctx, path, o.running)
			if errors.Is(err, fs.ErrNotExist) {
				return doctor.Skip("no state database yet (%s)", path)
			}
			if err != nil {
				return doctor.Fail(nil, "%s: %v", path, err)
			}
			if len(problems) == 0 {
				return doctor.OK("%s: quick_check ok", path)
			}
			ev := fmt.Sprintf("%s: %s", path, strings.Join(problems, "; "))
			if o.running {
				return doctor.Fail(doctor.Manual("stop cortexd (agents keep running), then run cortex-ops repair: it salvages the readable rows into a new database", "systemctl stop cortexd && cortex-ops repair --check sqlite.integrity"), "%s", ev)
			}
			return doctor.Result{Status: api.CheckFail, Evidence: ev,
				Fix: doctor.Auto("salvage the readable rows into a new database; the damaged file is kept in the transaction (agents whose rows were lost are not reattached)")}
		},
		FixFunc: func(ctx context.Context, r doctor.Result, tx *txn.Txn) error {
			if o.running {
				return errdefs.WithHint(errdefs.New(errdefs.FailedPrecondition, "cortexd has the database open"), "stop cortexd first (agents keep running)")
			}
			tmp := filepath.Join(o.paths.LibDir, "tmp")
			if err := os.MkdirAll(tmp, 0o700); err != nil {
				return err
			}
			dst := filepath.Join(tmp, fmt.Sprintf("state.db.salvage-%d", time.Now().UnixNano()))
			rep, err := store.Salvage(ctx, path, dst)
			if err != nil {
				_ = os.Remove(dst)
				return fmt.Errorf("salvage %s: %w", path, err)
			}
			defer os.Remove(dst) // gone once renamed into place
			for _, side := range []string{"-wal", "-shm"} {
				if _, err := os.Lstat(path + side); err == nil {
					if err := tx.Remove(path + side); err != nil {
						return err
					}
				}
			}
			if err := os.Chmod(dst, 0o600); err != nil {
				return err
			}
			if err := tx.ReplaceFile(path, dst); err != nil {
				return err
			}
			tx.Description += "; " + rep.String()
			return nil
		}}
}

func (o *opsEnv) checkEgressGateway() doctor.Check {
	return &doctor.Func{Meta: doctor.Info{ID: "egress.gateway", Title: "the egress gateway's DNS resolver and HTTP proxy answer", DependsOn: []string{"kernel.nftables"}},
		RunFunc: func(ctx context.Context) doctor.Result {
			gw := o.egress
			if gw == nil {
				g, err := newEgressGateway(o.cfg, nil)
				if err != nil {
					return doctor.Fail(doctor.Manual("correct egress: in config.yaml", ""), "%v", err)
				}
				defer g.Close()
				gw = g
			}
			ev, err := gw.SelfTest(ctx)
			if err != nil {
				return doctor.Fail(doctor.Manual("see the daemon's log; restart cortexd (agents keep running)", "systemctl restart cortexd"), "%v", err)
			}
			if !o.running {
				ev += " (a gateway built from the config: no daemon runs)"
			}
			return doctor.OK("%s", ev)
		}}
}

// newEgressGateway makes the gateway the config describes (log may be nil).
func newEgressGateway(cfg *config.Config, log *slog.Logger) (*egress.Gateway, error) {
	ec := egress.Config{Hosts: cfg.Egress.Hosts}
	if cfg.Egress.Resolver != "" {
		ec.Resolver = egress.NewResolver(cfg.Egress.Resolver)
	}
	return egress.New(ec, log)
}

func (o *opsEnv) checkEgressDNS() doctor.Check {
	return &doctor.Func{Meta: doctor.Info{ID: "egress.dns", Title: "the DNS server the egress gateway resolves allowed names with answers"},
		RunFunc: func(ctx context.Context) doctor.Result {
			var servers []string
			where := "/etc/resolv.conf"
			if o.cfg.Egress.Resolver != "" {
				servers, where = []string{o.cfg.Egress.Resolver}, "egress.resolver"
			} else {
				var err error
				if servers, err = egress.HostResolvers(); err != nil || len(servers) == 0 {
					return doctor.Fail(doctor.Manual("configure a DNS server in /etc/resolv.conf or set egress.resolver in config.yaml", ""), "no DNS server in /etc/resolv.conf (%v)", err)
				}
			}
			var up, down []string
			for _, s := range servers {
				if rtt, err := egress.ResolverAnswers(ctx, s); err != nil {
					down = append(down, err.Error())
				} else {
					up = append(up, fmt.Sprintf("%s answered in %s", s, rtt.Round(time.Microsecond)))
				}
			}
			fix := doctor.Manual("agents cannot reach allowed names while no DNS server answers: check the server ("+where+"), or point egress.resolver at one that works", "")
			switch {
			case len(up) == 0:
				return doctor.Fail(fix, "%s (from %s)", strings.Join(down, "; "), where)
			case len(down) > 0:
				return doctor.Warn(fix, "%s; but %s (from %s)", strings.Join(up, "; "), strings.Join(down, "; "), where)
			}
			return doctor.OK("%s (from %s)", strings.Join(up, "; "), where)
		}}
}

func (o *opsEnv) checkBus() doctor.Check {
	return &doctor.Func{Meta: doctor.Info{ID: "bus.health", Title: "the message bus: JetStream store and broker bridges", Critical: true},
		RunFunc: func(ctx context.Context) doctor.Result {
			if o.bus == nil {
				return doctor.Skip("cortexd is not running (the bus lives in it)")
			}
			ev, err := o.bus.Health(ctx)
			if err != nil {
				return doctor.Fail(doctor.Manual("see the daemon's log; restart cortexd (agents keep running; durable channels keep their messages)", "systemctl restart cortexd"), "%v", err)
			}
			var down []string
			brokers := o.bus.Brokers()
			for _, b := range brokers {
				if !b.Connected {
					down = append(down, fmt.Sprintf("project %s: broker %s unreachable (%d errors, %d dropped)", b.Project, b.URL, b.Errors, b.Dropped))
				}
			}
			if len(down) > 0 {
				return doctor.Warn(doctor.Manual("check the broker (bus.broker of the project's manifest); messages queue up to bus.bridge_buffer, then drop", ""),
					"%s; %s", ev, strings.Join(down, "; "))
			}
			return doctor.OK("%s; %d broker bridge(s) connected", ev, len(brokers))
		}}
}

func (o *opsEnv) checkLLM() doctor.Check {
	return &doctor.Func{Meta: doctor.Info{ID: "llm.providers", Title: "LLM providers configured and reachable (a models call)"},
		RunFunc: func(ctx context.Context) doctor.Result {
			if len(o.cfg.LLM.Providers) == 0 {
				return doctor.Skip("no llm providers configured")
			}
			if o.cfg.Ops.Offline {
				return doctor.Skip("ops.offline is set: providers are not called")
			}
			if o.llm == nil {
				return doctor.Skip("cortexd is not running (the gateway holds the keys)")
			}
			var ok, bad []string
			for _, p := range o.llm.ProbeProviders(ctx) {
				if p.Err != nil {
					bad = append(bad, fmt.Sprintf("%s (%s): %v", p.Provider, p.URL, p.Err))
				} else {
					ok = append(ok, fmt.Sprintf("%s answered %d in %s", p.Provider, p.Status, p.Took.Round(time.Millisecond)))
				}
			}
			fix := doctor.Manual("check the provider's base_url, the network path to it and its key (api_key_file or api_key_env); set ops.offline: true on hosts without a way out", "cortex llm models")
			switch {
			case len(ok) == 0:
				return doctor.Fail(fix, "%s", strings.Join(bad, "; "))
			case len(bad) > 0:
				return doctor.Warn(fix, "%s; %s", strings.Join(ok, "; "), strings.Join(bad, "; "))
			}
			return doctor.OK("%s", strings.Join(ok, "; "))
		}}
}

func (o *opsEnv) checkAudit() doctor.Check {
	return &doctor.Func{Meta: doctor.Info{ID: "audit.verify", Title: "the audit log's hash chain verifies"},
		RunFunc: func(ctx context.Context) doctor.Result {
			if o.auditVerify == nil {
				return doctor.Skip("this build keeps no audit log to verify")
			}
			ev, err := o.auditVerify(ctx)
			if err != nil {
				return doctor.Fail(doctor.Manual("the audit log was changed or truncated: keep a copy for investigation; cortex audit verify names the first bad record", "cortex audit verify"), "%v", err)
			}
			return doctor.OK("%s", ev)
		}}
}

// supState is doctor.State over the running supervisor and store.
type supState struct{ d *Daemon }

func (s supState) Agents(ctx context.Context) ([]doctor.AgentInfo, error) {
	var out []doctor.AgentInfo
	for _, st := range s.d.sup.List(ctx, "", true) {
		out = append(out, doctor.AgentInfo{Project: st.Project, Agent: st.Agent, Active: st.State.Active() || st.RestartPending})
	}
	return out, nil
}

func (s supState) BundleDirs(ctx context.Context) ([]string, error) {
	return bundleDirs(ctx, s.d.store)
}

func (s supState) Hold() func() {
	s.d.runMu.Lock()
	return s.d.runMu.Unlock
}

func bundleDirs(ctx context.Context, st *store.Store) ([]string, error) {
	ps, err := st.ListProjects(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range ps {
		out = append(out, p.BundleDir)
	}
	return out, nil
}

// storeState is doctor.State over a stopped daemon's database.
type storeState struct{ st *store.Store }

func (s storeState) Agents(ctx context.Context) ([]doctor.AgentInfo, error) {
	as, err := s.st.ListAgents(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []doctor.AgentInfo
	for _, a := range as {
		out = append(out, doctor.AgentInfo{Project: a.Project, Agent: a.Name, Active: supervisor.State(a.State).Active()})
	}
	return out, nil
}

func (s storeState) BundleDirs(ctx context.Context) ([]string, error) { return bundleDirs(ctx, s.st) }

func (s storeState) Hold() func() { return func() {} } // the root's lock is held

// opsEnv of the running daemon.
func (d *Daemon) ops() *opsEnv {
	return &opsEnv{paths: d.paths, cfg: d.cfg, env: d.env, running: true, source: "daemon", state: supState{d},
		egress: d.egressGW, bus: d.bus, llm: d.llm, txns: d.txns, auditVerify: verifyAudit(d.paths)}
}

// announce puts every transaction not yet reported on the event stream
// (those `cortexd ops` made while no daemon ran, and the daemon's own).
func (d *Daemon) announce() {
	pending, err := d.txns.Pending()
	if err != nil {
		d.log.Warn("ops: list transactions", "err", err)
		return
	}
	for _, t := range pending {
		outcome := t.State
		d.events.Emit(events.Event{Type: events.Ops, Detail: events.OpsDetail{Action: t.Source, ID: t.ID, Outcome: outcome, Message: txnMessage(t)}})
		if err := d.txns.MarkAnnounced(t); err != nil {
			d.log.Warn("ops: mark transaction announced", "id", t.ID, "err", err)
		}
		d.log.Info("ops transaction", "id", t.ID, "check", t.Check, "state", t.State, "changes", len(t.Changes))
	}
}

func txnMessage(t *txn.Txn) string {
	var parts []string
	for _, c := range t.Changes {
		if c.Applied {
			parts = append(parts, c.String())
		}
	}
	msg := t.Check + ": " + t.Description
	if len(parts) > 0 {
		msg += ": " + strings.Join(parts, "; ")
	}
	if len(msg) > 2000 {
		msg = msg[:2000] + "..."
	}
	return msg
}

// Handlers.

func queryOf(r *http.Request) api.ChecksQuery {
	q := r.URL.Query()
	return api.ChecksQuery{Checks: q["check"], Ignore: q["ignore"], Critical: q.Get("critical") == "1", Also: q["also"]}
}

func (d *Daemon) getOpsChecks(w http.ResponseWriter, r *http.Request) error {
	o := d.ops()
	if r.URL.Query().Get("list") == "1" {
		api.WriteJSON(w, http.StatusOK, doctor.List(o.checks(), o.source))
		return nil
	}
	rep, err := o.report(r.Context(), queryOf(r))
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, rep)
	return nil
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 4<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errdefs.New(errdefs.InvalidArgument, "request body: %v", err)
	}
	return nil
}

func (d *Daemon) postOpsRepair(w http.ResponseWriter, r *http.Request) error {
	var req api.RepairRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	res, err := d.ops().repair(r.Context(), req)
	if err != nil {
		return err
	}
	if !req.DryRun {
		d.announce()
	}
	api.WriteJSON(w, http.StatusOK, res)
	return nil
}

func (d *Daemon) getOpsTransactions(w http.ResponseWriter, r *http.Request) error {
	all, err := d.txns.List()
	if err != nil {
		return err
	}
	out := []api.Txn{}
	for _, t := range all {
		out = append(out, apiTxn(t))
	}
	api.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (d *Daemon) postOpsUndo(w http.ResponseWriter, r *http.Request) error {
	var req api.UndoRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	d.runMu.Lock()
	t, err := d.txns.Undo(r.PathValue("id"), req.Force)
	d.runMu.Unlock()
	if t != nil && t.State == txn.StateUndone {
		d.announce()
	}
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, apiTxn(t))
	return nil
}

func (d *Daemon) postOpsRecord(w http.ResponseWriter, r *http.Request) error {
	var rec api.OpsRecord
	if err := decodeBody(r, &rec); err != nil {
		return err
	}
	if rec.Action == "" || rec.Outcome == "" {
		return errdefs.New(errdefs.InvalidArgument, "action and outcome are required")
	}
	d.events.Emit(events.Event{Type: events.Ops, Detail: events.OpsDetail{Action: rec.Action, ID: rec.ID, Outcome: rec.Outcome, Message: rec.Message}})
	d.log.Info("ops", "action", rec.Action, "id", rec.ID, "outcome", rec.Outcome, "message", rec.Message)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// postOpsHooks runs the update hooks for cortex-ops update.
func (d *Daemon) postOpsHooks(w http.ResponseWriter, r *http.Request) error {
	event := r.PathValue("event")
	if event != hooks.PreUpdate && event != hooks.PostUpdate {
		return errdefs.New(errdefs.InvalidArgument, "only the pre-update and post-update hooks run on request, not %q", event)
	}
	var payload map[string]any
	if err := decodeBody(r, &payload); err != nil {
		return err
	}
	out := []api.HookResult{}
	for _, res := range d.hooks.Run(r.Context(), event, payload) {
		out = append(out, apiHookResult(event, res))
	}
	api.WriteJSON(w, http.StatusOK, out)
	return nil
}

func apiHookResult(event string, r hooks.Result) api.HookResult {
	h := api.HookResult{Hook: r.Hook, Event: event, ExitCode: r.ExitCode, Output: r.Output, DurationMS: r.Duration.Milliseconds()}
	if len(h.Output) > 4096 {
		h.Output = h.Output[len(h.Output)-4096:]
	}
	if r.Err != nil {
		h.Error = r.Err.Error()
	}
	return h
}

// explainSystem is the fixed instruction sent with a doctor report.
const explainSystem = `You are the operations assistant of Cortex, a Linux runtime for sandboxed AI agents.
The user message is the JSON report of "cortex-ops doctor" (schema cortex.doctor/v1): checks with an id,
a status (ok, warn, fail, skip), the evidence the check saw and a fix (auto: "cortex-ops repair" applies it;
manual: an operator must). Recommend what to do, most important first: for each check that is not ok,
say what it means for the agents, then the fix. Name checks by id. Be brief. Do not invent facts that
are not in the report.`

// postOpsExplain sends a doctor report (as JSON, re-encoded from its
// fields, so nothing but the report goes out) to ops.explain_alias.
func (d *Daemon) postOpsExplain(w http.ResponseWriter, r *http.Request) error {
	var rep api.DoctorReport
	if err := decodeBody(r, &rep); err != nil {
		return err
	}
	alias := d.cfg.Ops.ExplainAlias
	if alias == "" {
		return errdefs.WithHint(errdefs.New(errdefs.FailedPrecondition, "no LLM alias is set for doctor --explain"),
			"set ops.explain_alias in /etc/cortex/config.yaml to an alias of the llm: section, and restart cortexd")
	}
	if d.llm == nil {
		return errdefs.New(errdefs.Unavailable, "the LLM gateway is not running")
	}
	rep.Explain = nil
	body, err := json.Marshal(struct {
		Schema  string            `json:"schema"`
		Version string            `json:"version"`
		Checks  []api.Check       `json:"checks"`
		Summary api.DoctorSummary `json:"summary"`
	}{rep.Schema, rep.Version, rep.Checks, rep.Summary})
	if err != nil {
		return err
	}
	res, err := d.llm.Chat(r.Context(), api.LLMChatRequest{Alias: alias, System: explainSystem, Prompt: string(body), NoCache: true})
	if err != nil {
		return err
	}
	d.events.Emit(events.Event{Type: events.Ops, Detail: events.OpsDetail{Action: "explain", Outcome: "ok", Message: fmt.Sprintf("doctor report (%d checks) sent to alias %s (%s)", len(rep.Checks), alias, res.Model)}})
	api.WriteJSON(w, http.StatusOK, api.Explanation{Alias: alias, Model: res.Model, Text: res.Text})
	return nil
}
