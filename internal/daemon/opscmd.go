package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/doctor"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/store"
	"github.com/cortexrt/cortex/internal/txn"
)

// OpsArg is the hidden subcommand `cortexd ops`: doctor's daemon-side
// checks, repair and undo for a root no daemon serves. cortex-ops runs it
// when no daemon answers, since the CLI links neither SQLite nor the
// kernel probes. It prints JSON on stdout (api.DoctorReport,
// api.RepairResponse, api.Txn, or api.ErrorBody with exit code 1).
//
//	cortexd ops [--root R] checks [--list] [--critical] [--check ID]... [--ignore ID]...
//	cortexd ops [--root R] repair [--dry-run] [--check ID]... [--ignore ID]...
//	cortexd ops [--root R] transactions
//	cortexd ops [--root R] undo [--force] ID
const OpsArg = "ops"

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// OpsMain runs `cortexd ops ARGS` and returns the exit code.
func OpsMain(args []string, env config.Env, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		_ = json.NewEncoder(stdout).Encode(api.ErrorBody{Error: err.Error(), Category: string(errdefs.CategoryOf(err)), Hint: errdefs.HintOf(err)})
		return 1
	}
	fs0 := flag.NewFlagSet("cortexd ops", flag.ContinueOnError)
	fs0.SetOutput(stderr)
	root := fs0.String("root", env.Root, "prefix for every host path")
	if err := fs0.Parse(args); err != nil {
		return fail(errdefs.Wrap(errdefs.InvalidArgument, err))
	}
	if fs0.NArg() == 0 {
		return fail(errdefs.New(errdefs.InvalidArgument, "cortexd ops: checks, repair, transactions or undo"))
	}
	verb, rest := fs0.Arg(0), fs0.Args()[1:]
	var checks, ignore, also multi
	fs := flag.NewFlagSet("cortexd ops "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&checks, "check", "a check to run (a pattern; repeatable)")
	fs.Var(&ignore, "ignore", "a check to skip (a pattern; repeatable)")
	fs.Var(&also, "also", "a check the caller runs itself (repeatable)")
	list := fs.Bool("list", false, "list the checks")
	critical := fs.Bool("critical", false, "only the critical checks")
	dry := fs.Bool("dry-run", false, "show what repair would change")
	force := fs.Bool("force", false, "undo even what changed since")
	if err := fs.Parse(rest); err != nil {
		return fail(errdefs.Wrap(errdefs.InvalidArgument, err))
	}
	ctx := context.Background()
	o, closeEnv, err := offlineEnv(config.NewPaths(*root), env)
	if err != nil {
		return fail(err)
	}
	defer closeEnv()
	write := func(v any) int {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return 1
		}
		return 0
	}
	switch verb {
	case "checks":
		if *list {
			return write(doctor.List(o.checks(), o.source))
		}
		rep, err := o.report(ctx, api.ChecksQuery{Checks: checks, Ignore: ignore, Critical: *critical, Also: also})
		if err != nil {
			return fail(err)
		}
		return write(rep)
	case "repair":
		if err := o.openTxns(); err != nil {
			return fail(err)
		}
		unlock, err := lockOffline(o.paths)
		if err != nil {
			return fail(err)
		}
		defer unlock()
		res, err := o.repair(ctx, api.RepairRequest{Checks: checks, Ignore: ignore, DryRun: *dry, Also: also})
		if err != nil {
			return fail(err)
		}
		return write(res)
	case "transactions":
		if err := o.openTxns(); err != nil {
			return fail(err)
		}
		all, err := o.txns.List()
		if err != nil {
			return fail(err)
		}
		out := []api.Txn{}
		for _, t := range all {
			out = append(out, apiTxn(t))
		}
		return write(out)
	case "undo":
		if fs.NArg() != 1 {
			return fail(errdefs.New(errdefs.InvalidArgument, "cortexd ops undo takes one transaction id"))
		}
		if err := o.openTxns(); err != nil {
			return fail(err)
		}
		unlock, err := lockOffline(o.paths)
		if err != nil {
			return fail(err)
		}
		defer unlock()
		t, err := o.txns.Undo(fs.Arg(0), *force)
		if err != nil {
			return fail(err)
		}
		return write(apiTxn(t))
	}
	return fail(errdefs.New(errdefs.InvalidArgument, "cortexd ops: unknown verb %q; use checks, repair, transactions or undo", verb))
}

// offlineEnv is what the checks can use without a daemon: the config
// file, the state database read only, a transaction store.
func offlineEnv(p config.Paths, env config.Env) (*opsEnv, func(), error) {
	if c, err := net.DialTimeout("unix", p.Socket, 300*time.Millisecond); err == nil {
		c.Close()
		return nil, nil, errdefs.WithHint(errdefs.New(errdefs.FailedPrecondition, "a daemon answers on %s", p.Socket), "cortex-ops talks to it: run cortex-ops doctor")
	}
	cfg, err := config.Load(p.ConfigFile)
	if cfg == nil || err != nil {
		cfg = config.Default() // config.file reports the problem
	}
	o := &opsEnv{paths: p, cfg: cfg, env: env, source: "offline", auditVerify: verifyAudit(p)}
	closeFn := func() {}
	db := filepath.Join(p.LibDir, "state.db")
	if st, err := store.OpenReadOnly(db); err == nil {
		o.state = storeState{st}
		closeFn = func() { _ = st.Close() }
	} else if errors.Is(err, fs.ErrNotExist) {
		o.state = emptyState{} // no daemon ever ran here: no agent is live
	} else {
		return nil, nil, fmt.Errorf("open %s: %w", db, err)
	}
	return o, closeFn, nil
}

// lockOffline takes the root's lock, so no daemon starts while an offline
// repair or undo changes its state.
func lockOffline(p config.Paths) (func(), error) {
	if err := os.MkdirAll(p.RunDir, 0o755); err != nil {
		return nil, err
	}
	f, err := lockRoot(p)
	if err != nil {
		return nil, errdefs.WithHint(err, "a cortexd serves this root: cortex-ops talks to it")
	}
	return func() { f.Close() }, nil
}

func (o *opsEnv) openTxns() error {
	if err := os.MkdirAll(o.paths.LibDir, 0o711); err != nil {
		return err
	}
	if err := os.MkdirAll(opsDir(o.paths), 0o700); err != nil {
		return err
	}
	t, err := txn.Open(txnDir(o.paths))
	o.txns = t
	return err
}

// emptyState is a root no daemon ever served.
type emptyState struct{}

func (emptyState) Agents(context.Context) ([]doctor.AgentInfo, error) { return nil, nil }
func (emptyState) BundleDirs(context.Context) ([]string, error)       { return nil, nil }
func (emptyState) Hold() func()                                       { return func() {} }
