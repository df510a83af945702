package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// DoctorSchema names the version of the doctor report's JSON
// (docs/ops.md, docs/schemas/doctor-v1.json). A change that removes or
// renames a field, or changes a field's meaning, gets a new version.
const DoctorSchema = "cortex.doctor/v1"

// CheckStatus is a check's outcome.
type CheckStatus string

const (
	CheckOK   CheckStatus = "ok"
	CheckWarn CheckStatus = "warn"
	CheckFail CheckStatus = "fail"
	CheckSkip CheckStatus = "skip"
)

// FixKind says whether repair may apply a fix.
type FixKind string

const (
	// FixAuto: `cortex-ops repair` applies it, as an undoable transaction.
	FixAuto FixKind = "auto"
	// FixManual: printed, never run.
	FixManual FixKind = "manual"
)

// Fix is what to do about a check that is not ok.
type Fix struct {
	Kind        FixKind `json:"kind"`
	Description string  `json:"description"`
	// Command is a shell command an operator may run (manual fixes), or
	// the repair command (auto fixes).
	Command string `json:"command,omitempty"`
}

// Check is one check's result: the doctor report's unit, and what a check
// plugin prints.
type Check struct {
	// ID is stable ("kernel.cgroups", "plugin.backup.age"): --check,
	// --ignore and scripts use it.
	ID     string      `json:"id"`
	Title  string      `json:"title"`
	Status CheckStatus `json:"status"`
	// Evidence is what the check saw: the facts behind the status.
	Evidence string `json:"evidence"`
	// Fix is set when Status is warn or fail and something can be done.
	Fix *Fix `json:"fix,omitempty"`
	// DependsOn are checks that must not fail for this one to run; a
	// check whose dependency failed is skipped.
	DependsOn []string `json:"depends_on"`
	// Critical checks gate an update (cortex-ops update).
	Critical bool `json:"critical,omitempty"`
	// Source is "cli", "daemon", "offline" (cortexd ops, no daemon
	// running) or "plugin:NAME".
	Source     string `json:"source,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// DoctorSummary counts checks by status.
type DoctorSummary struct {
	OK   int `json:"ok"`
	Warn int `json:"warn"`
	Fail int `json:"fail"`
	Skip int `json:"skip"`
}

// DoctorReport answers GET /v1/ops/checks and is what `cortex-ops doctor
// --json` prints.
type DoctorReport struct {
	Schema string `json:"schema"`
	// Version is the cortex version that made the report.
	Version string    `json:"version"`
	Time    time.Time `json:"time"`
	Root    string    `json:"root"`
	// Runner is "daemon" (the running cortexd ran the checks) or
	// "offline" (cortexd ops, no daemon answered).
	Runner  string        `json:"runner"`
	Checks  []Check       `json:"checks"`
	Summary DoctorSummary `json:"summary"`
	// ExitCode is doctor's exit code: 0 all ok, 1 warnings only, 2 any
	// failure.
	ExitCode int `json:"exit_code"`
	// Explain is the LLM's reading of the report (--explain).
	Explain *Explanation `json:"explain,omitempty"`
}

// Tally fills Summary and ExitCode from Checks.
func (r *DoctorReport) Tally() {
	r.Summary = DoctorSummary{}
	for _, c := range r.Checks {
		switch c.Status {
		case CheckOK:
			r.Summary.OK++
		case CheckWarn:
			r.Summary.Warn++
		case CheckFail:
			r.Summary.Fail++
		default:
			r.Summary.Skip++
		}
	}
	switch {
	case r.Summary.Fail > 0:
		r.ExitCode = 2
	case r.Summary.Warn > 0:
		r.ExitCode = 1
	default:
		r.ExitCode = 0
	}
}

// CheckInfo describes a check (doctor --list).
type CheckInfo struct {
	ID        string   `json:"id"`
	Title     string   `json:"title"`
	DependsOn []string `json:"depends_on"`
	Critical  bool     `json:"critical,omitempty"`
	// AutoFix: repair can fix what this check finds (some of it).
	AutoFix bool   `json:"auto_fix,omitempty"`
	Source  string `json:"source,omitempty"`
}

// ChecksQuery selects checks: IDs (with their dependencies; "" = all) and
// Ignore (reported as skipped). Both take path.Match patterns
// ("kernel.*").
type ChecksQuery struct {
	Checks   []string
	Ignore   []string
	Critical bool // only the checks marked critical
	// Also are ids of checks the caller runs itself, so patterns that
	// match only them are not unknown.
	Also []string
}

func (q ChecksQuery) values() url.Values {
	v := url.Values{}
	for _, c := range q.Checks {
		v.Add("check", c)
	}
	for _, c := range q.Ignore {
		v.Add("ignore", c)
	}
	if q.Critical {
		v.Set("critical", "1")
	}
	for _, c := range q.Also {
		v.Add("also", c)
	}
	return v
}

// RepairRequest asks POST /v1/ops/repair to fix what the selected checks
// find.
type RepairRequest struct {
	Checks []string `json:"checks,omitempty"`
	Ignore []string `json:"ignore,omitempty"`
	DryRun bool     `json:"dry_run"`
	Also   []string `json:"also,omitempty"`
}

// TxnChange is one change of a transaction.
type TxnChange struct {
	Kind        string `json:"kind"`
	Path        string `json:"path"`
	Description string `json:"description"`
	Applied     bool   `json:"applied"`
	Undone      bool   `json:"undone,omitempty"`
}

// Txn is a repair transaction (internal/txn), as the API shows it.
type Txn struct {
	ID          string      `json:"id"`
	Time        time.Time   `json:"time"`
	Source      string      `json:"source"`
	Check       string      `json:"check,omitempty"`
	Description string      `json:"description"`
	State       string      `json:"state"`
	Changes     []TxnChange `json:"changes"`
	Error       string      `json:"error,omitempty"`
	UndoneAt    *time.Time  `json:"undone_at,omitempty"`
}

// RepairFailure is a fix that could not be applied (its transaction was
// aborted and reverted, or it was refused).
type RepairFailure struct {
	Check string `json:"check"`
	Error string `json:"error"`
	TxnID string `json:"txn_id,omitempty"`
}

// RepairResponse is what repair did (or, with DryRun, would do).
type RepairResponse struct {
	DryRun bool `json:"dry_run"`
	// Transactions made (or planned: their id is "(dry run)").
	Transactions []Txn `json:"transactions"`
	// Manual are the checks not ok whose fix an operator must apply.
	Manual []Check `json:"manual"`
	// Failed are auto fixes that failed or were refused.
	Failed []RepairFailure `json:"failed"`
	// Runner is "daemon" or "offline".
	Runner string `json:"runner"`
}

// UndoRequest asks POST /v1/ops/transactions/{id}/undo.
type UndoRequest struct {
	Force bool `json:"force"`
}

// OpsRecord asks POST /v1/ops/record to put an operation the CLI did
// (an update, a rollback) on the daemon's event stream.
type OpsRecord struct {
	Action  string `json:"action"`
	ID      string `json:"id,omitempty"`
	Outcome string `json:"outcome"`
	Message string `json:"message,omitempty"`
}

// HookResult is one lifecycle hook's run.
type HookResult struct {
	Hook       string `json:"hook"`
	Event      string `json:"event"`
	ExitCode   int    `json:"exit_code"`
	Output     string `json:"output,omitempty"`
	DurationMS int64  `json:"duration_ms"`
	Error      string `json:"error,omitempty"`
}

// Explanation is the LLM's reading of a doctor report.
type Explanation struct {
	Alias string `json:"alias"`
	Model string `json:"model,omitempty"`
	Text  string `json:"text"`
}

// CanaryResult is a canary run (POST /v1/ops/canary).
type CanaryResult struct {
	OK         bool   `json:"ok"`
	Project    string `json:"project"`
	Runtime    string `json:"runtime"`
	Output     string `json:"output"`
	DurationMS int64  `json:"duration_ms"`
	Error      string `json:"error,omitempty"`
}

// OpsChecks runs the daemon's checks.
func (c *Client) OpsChecks(ctx context.Context, q ChecksQuery) (DoctorReport, error) {
	var out DoctorReport
	return out, c.Do(ctx, http.MethodGet, "/ops/checks", q.values(), nil, &out)
}

// OpsCheckList lists the daemon's checks.
func (c *Client) OpsCheckList(ctx context.Context) ([]CheckInfo, error) {
	var out []CheckInfo
	return out, c.Do(ctx, http.MethodGet, "/ops/checks", url.Values{"list": {"1"}}, nil, &out)
}

// OpsRepair applies (or plans) the auto fixes.
func (c *Client) OpsRepair(ctx context.Context, req RepairRequest) (RepairResponse, error) {
	var out RepairResponse
	return out, c.postJSON(ctx, "/ops/repair", req, &out)
}

// OpsTransactions lists repair transactions, oldest first.
func (c *Client) OpsTransactions(ctx context.Context) ([]Txn, error) {
	var out []Txn
	return out, c.Do(ctx, http.MethodGet, "/ops/transactions", nil, nil, &out)
}

// OpsUndo reverts a transaction.
func (c *Client) OpsUndo(ctx context.Context, id string, force bool) (Txn, error) {
	var out Txn
	return out, c.postJSON(ctx, "/ops/transactions/"+url.PathEscape(id)+"/undo", UndoRequest{Force: force}, &out)
}

// OpsRecord puts an operation on the daemon's event stream.
func (c *Client) OpsRecord(ctx context.Context, r OpsRecord) error {
	return c.postJSON(ctx, "/ops/record", r, nil)
}

// OpsHooks runs the hooks of event (pre-update, post-update) with payload
// on their stdin.
func (c *Client) OpsHooks(ctx context.Context, event string, payload any) ([]HookResult, error) {
	var out []HookResult
	return out, c.postJSON(ctx, "/ops/hooks/"+url.PathEscape(event), payload, &out)
}

// OpsExplain sends a doctor report to the LLM alias ops.explain_alias.
func (c *Client) OpsExplain(ctx context.Context, r DoctorReport) (Explanation, error) {
	var out Explanation
	return out, c.postJSON(ctx, "/ops/explain", r, &out)
}

// OpsCanary runs the built-in canary agent.
func (c *Client) OpsCanary(ctx context.Context) (CanaryResult, error) {
	var out CanaryResult
	return out, c.postJSON(ctx, "/ops/canary", struct{}{}, &out)
}

func (c *Client) postJSON(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.Do(ctx, http.MethodPost, path, nil, bytes.NewReader(body), out)
}
