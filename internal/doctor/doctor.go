// Package doctor is the engine of `cortex-ops doctor` and `repair`: the
// Check interface, a runner that runs checks in parallel with a timeout
// each, honouring their dependencies and the operator's --check and
// --ignore selections one check at a time, check plugins (executables in
// etc/cortex/plugins/checks that print the report's JSON), the repair loop
// that applies auto fixes as undoable transactions (internal/txn), and the
// built-in checks of the host: kernel walls, interpreters, file and socket
// permissions, disk headroom, stale cgroups, mounts and sockets, orphaned
// bundles, clock and the agents' uid range.
//
// Checks that need the daemon's subsystems (SQLite, bus, egress gateway,
// LLM providers, audit) are defined by internal/daemon and run by the same
// engine. The package runs in cortexd (GET /v1/ops/checks) or in its
// `cortexd ops` subcommand when no daemon runs; the CLI only prints what
// they return, so it never links what checks need.
package doctor

import (
	"context"
	"fmt"
	"strings"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/txn"
)

// Check is one health check.
type Check interface {
	// Info describes the check; it is constant.
	Info() Info
	// Run examines the host and says what it found. It must return soon
	// after ctx is done (the runner gives each check a timeout) and be
	// safe to run concurrently with every other check. It must not
	// change anything.
	Run(ctx context.Context) Result
}

// Repairer is a Check that can fix (some of) what it finds.
type Repairer interface {
	Check
	// Repair fixes what r (a result of Run with an auto fix) found, making
	// every change through tx, which journals it for undo and, in a dry
	// run, only records it. It must change nothing outside tx.
	Repair(ctx context.Context, r Result, tx *txn.Txn) error
}

// Info describes a check.
type Info struct {
	// ID is stable: scripts, --check and --ignore use it. Dotted, lower
	// case: "<area>.<what>".
	ID    string
	Title string
	// DependsOn are IDs of checks that must not fail for this one to be
	// meaningful; it is skipped when one does.
	DependsOn []string
	// Critical checks gate an update.
	Critical bool
	// AutoFix: Repair can fix some of what Run reports.
	AutoFix bool
}

// Result is what a check found.
type Result struct {
	Status   api.CheckStatus
	Evidence string
	Fix      *api.Fix
	// Data is what Repair needs (paths found, ...); never reported.
	Data any
	// More are further results reported after this one (a plugin's own
	// checks).
	More []api.Check
}

// OK is a passing result.
func OK(format string, args ...any) Result {
	return Result{Status: api.CheckOK, Evidence: fmt.Sprintf(format, args...)}
}

// Skip is a check that could not run, with the reason.
func Skip(format string, args ...any) Result {
	return Result{Status: api.CheckSkip, Evidence: fmt.Sprintf(format, args...)}
}

// Warn is a problem that does not stop agents from running safely.
func Warn(fix *api.Fix, format string, args ...any) Result {
	return Result{Status: api.CheckWarn, Evidence: fmt.Sprintf(format, args...), Fix: fix}
}

// Fail is a problem that does.
func Fail(fix *api.Fix, format string, args ...any) Result {
	return Result{Status: api.CheckFail, Evidence: fmt.Sprintf(format, args...), Fix: fix}
}

// Auto is a fix repair applies.
func Auto(description string) *api.Fix {
	return &api.Fix{Kind: api.FixAuto, Description: description, Command: "cortex-ops repair"}
}

// Manual is a fix an operator applies; command may be "".
func Manual(description, command string) *api.Fix {
	return &api.Fix{Kind: api.FixManual, Description: description, Command: command}
}

// Func is a Check (and Repairer) made of functions.
type Func struct {
	Meta    Info
	RunFunc func(ctx context.Context) Result
	FixFunc func(ctx context.Context, r Result, tx *txn.Txn) error
}

var _ Repairer = (*Func)(nil)

// Info implements Check.
func (f *Func) Info() Info {
	i := f.Meta
	i.AutoFix = f.FixFunc != nil
	return i
}

// Run implements Check.
func (f *Func) Run(ctx context.Context) Result { return f.RunFunc(ctx) }

// Repair implements Repairer.
func (f *Func) Repair(ctx context.Context, r Result, tx *txn.Txn) error {
	if f.FixFunc == nil {
		return fmt.Errorf("%s has no automatic fix", f.Meta.ID)
	}
	return f.FixFunc(ctx, r, tx)
}

// list joins items as "a; b; c", at most max of them.
func list(items []string, max int) string {
	if len(items) > max {
		return strings.Join(items[:max], "; ") + fmt.Sprintf("; and %d more", len(items)-max)
	}
	return strings.Join(items, "; ")
}
