package doctor

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/txn"
)

// Options select and bound a run.
type Options struct {
	// Only runs these checks (path.Match patterns) and what they depend
	// on; empty runs every check.
	Only []string
	// Ignore reports these (patterns) as skipped without running them,
	// one check at a time: nothing else changes.
	Ignore []string
	// Critical runs only the critical checks (and their dependencies).
	Critical bool
	// Timeout bounds each check; 0 means 10s.
	Timeout time.Duration
	// Source is put on every result ("daemon", "offline").
	Source string
	// Known are ids of checks run elsewhere (the CLI's): a pattern that
	// matches one of them is not an unknown pattern here.
	Known []string
}

// selection is what a run covers.
type selection struct {
	order   []Check
	byID    map[string]Check
	run     map[string]bool
	ignored map[string]string // id -> the pattern that ignored it
}

func matches(pattern, id string) bool {
	ok, err := path.Match(pattern, id)
	return err == nil && ok
}

// sel resolves opts against checks. Every pattern must match a check.
func sel(checks []Check, opts Options) (*selection, error) {
	s := &selection{byID: map[string]Check{}, run: map[string]bool{}, ignored: map[string]string{}}
	for _, c := range checks {
		id := c.Info().ID
		if _, dup := s.byID[id]; dup {
			return nil, fmt.Errorf("two checks have the id %q", id)
		}
		s.byID[id] = c
		s.order = append(s.order, c)
	}
	var unknown []string
	matchAny := func(p string) bool {
		if _, err := path.Match(p, ""); err != nil {
			return false
		}
		for id := range s.byID {
			if matches(p, id) {
				return true
			}
		}
		for _, id := range opts.Known {
			if matches(p, id) {
				return true
			}
		}
		return false
	}
	for _, p := range append(append([]string{}, opts.Only...), opts.Ignore...) {
		if !matchAny(p) {
			unknown = append(unknown, p)
		}
	}
	if len(unknown) > 0 {
		return nil, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "no check matches %s", strings.Join(quoteAll(unknown), ", ")),
			"cortex-ops doctor --list shows the checks and their ids")
	}
	var add func(id string)
	add = func(id string) {
		if s.run[id] {
			return
		}
		c, ok := s.byID[id]
		if !ok {
			return // a dependency on a check this runner does not have (the CLI's)
		}
		s.run[id] = true
		for _, d := range c.Info().DependsOn {
			add(d)
		}
	}
	for _, c := range s.order {
		info := c.Info()
		want := len(opts.Only) == 0
		for _, p := range opts.Only {
			want = want || matches(p, info.ID)
		}
		if opts.Critical && !info.Critical {
			want = false
		}
		if want {
			add(info.ID)
		}
	}
	for id := range s.run {
		for _, p := range opts.Ignore {
			if matches(p, id) {
				s.ignored[id] = p
			}
		}
	}
	return s, nil
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// outcome is one check's result with the data Repair needs.
type outcome struct {
	check  Check
	result Result
	report api.Check
}

// Run runs the selected checks in parallel, each with its timeout; a check
// waits for its dependencies and is skipped when one failed. Results come
// in the order of checks. The error is an InvalidArgument for a pattern
// that matches no check.
func Run(ctx context.Context, checks []Check, opts Options) ([]api.Check, error) {
	outs, err := run(ctx, checks, opts)
	if err != nil {
		return nil, err
	}
	return reports(outs), nil
}

func reports(outs []*outcome) []api.Check {
	var out []api.Check
	for _, o := range outs {
		out = append(out, o.report)
		out = append(out, o.result.More...)
	}
	return out
}

func run(ctx context.Context, checks []Check, opts Options) ([]*outcome, error) {
	s, err := sel(checks, opts)
	if err != nil {
		return nil, err
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	done := map[string]chan struct{}{}
	outs := map[string]*outcome{}
	for id := range s.run {
		done[id] = make(chan struct{})
		outs[id] = &outcome{check: s.byID[id]}
	}
	var wg sync.WaitGroup
	for id := range s.run {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[id])
			o := outs[id]
			info := o.check.Info()
			o.report = api.Check{ID: info.ID, Title: info.Title, DependsOn: nonNil(info.DependsOn), Critical: info.Critical, Source: opts.Source}
			for _, dep := range info.DependsOn {
				ch, ok := done[dep]
				if !ok {
					continue
				}
				<-ch
				if st := outs[dep].report.Status; st == api.CheckFail {
					o.result = Skip("needs %s, which failed", dep)
				} else if st == api.CheckSkip && outs[dep].result.Data == depSkipped {
					o.result = Skip("needs %s, which was skipped", dep)
				} else {
					continue
				}
				o.result.Data = depSkipped
				o.fill()
				return
			}
			if p, ok := s.ignored[id]; ok {
				o.result = Skip("ignored (--ignore %s)", p)
				o.fill()
				return
			}
			start := time.Now()
			o.result = runOne(ctx, o.check, timeout)
			o.report.DurationMS = time.Since(start).Milliseconds()
			o.fill()
		}()
	}
	wg.Wait()
	var ordered []*outcome
	for _, c := range s.order {
		if o, ok := outs[c.Info().ID]; ok {
			ordered = append(ordered, o)
		}
	}
	return ordered, nil
}

// depSkipped marks a result skipped for its dependency, so that its own
// dependents are skipped too.
var depSkipped = &struct{ name string }{"dependency"}

func (o *outcome) fill() {
	o.report.Status = o.result.Status
	o.report.Evidence = o.result.Evidence
	o.report.Fix = o.result.Fix
	if o.report.Status == "" {
		o.report.Status = api.CheckFail
		o.report.Evidence = "the check returned no status"
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// runOne runs c with a timeout; a check that does not return in time is a
// failure (its goroutine is left to notice ctx).
func runOne(ctx context.Context, c Check, timeout time.Duration) Result {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ch := make(chan Result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				ch <- Fail(nil, "the check crashed: %v", p)
			}
		}()
		ch <- c.Run(ctx)
	}()
	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
		if ctx.Err() == context.DeadlineExceeded {
			return Fail(nil, "did not answer within %s", timeout)
		}
		return Fail(nil, "interrupted: %v", ctx.Err())
	}
}

// List describes the checks.
func List(checks []Check, source string) []api.CheckInfo {
	out := []api.CheckInfo{}
	for _, c := range checks {
		i := c.Info()
		out = append(out, api.CheckInfo{ID: i.ID, Title: i.Title, DependsOn: nonNil(i.DependsOn), Critical: i.Critical, AutoFix: i.AutoFix, Source: source})
	}
	return out
}

// RepairResult is what Repair did.
type RepairResult struct {
	Checks []api.Check
	// Txns are the transactions made (or planned).
	Txns []*txn.Txn
	// Manual are the checks not ok whose fix is manual.
	Manual []api.Check
	Failed []api.RepairFailure
}

// Repair runs the selected checks and applies the auto fix of each that
// is not ok, one transaction per check, in check order (never in
// parallel: fixes change the host). A fix that fails is aborted, its
// applied changes reverted, and reported in Failed. With dryRun the fixes
// are planned (store.Plan) and nothing changes.
func Repair(ctx context.Context, checks []Check, opts Options, store *txn.Store, dryRun bool) (RepairResult, error) {
	outs, err := run(ctx, checks, opts)
	if err != nil {
		return RepairResult{}, err
	}
	res := RepairResult{Checks: reports(outs), Manual: []api.Check{}, Failed: []api.RepairFailure{}}
	for _, o := range outs {
		r := o.result
		if r.Status != api.CheckWarn && r.Status != api.CheckFail {
			continue
		}
		rp, ok := o.check.(Repairer)
		if r.Fix == nil || r.Fix.Kind != api.FixAuto || !ok {
			if r.Fix != nil {
				res.Manual = append(res.Manual, o.report)
			}
			continue
		}
		id := o.report.ID
		var tx *txn.Txn
		if dryRun {
			tx = store.Plan("repair", id, r.Fix.Description)
		} else if tx, err = store.Begin("repair", id, r.Fix.Description); err != nil {
			res.Failed = append(res.Failed, api.RepairFailure{Check: id, Error: err.Error()})
			continue
		}
		if err := rp.Repair(ctx, r, tx); err != nil {
			if aerr := tx.Abort(err); aerr != nil {
				err = fmt.Errorf("%w (and reverting what was applied: %v)", err, aerr)
			}
			f := api.RepairFailure{Check: id, Error: err.Error()}
			if !dryRun {
				f.TxnID = tx.ID
			}
			res.Failed = append(res.Failed, f)
			continue
		}
		if len(tx.Changes) == 0 {
			// Nothing to do after all (fixed meanwhile): no transaction.
			if !dryRun {
				_ = tx.Abort(nil)
				_ = discard(store, tx)
			}
			continue
		}
		if err := tx.Commit(); err != nil {
			res.Failed = append(res.Failed, api.RepairFailure{Check: id, Error: err.Error(), TxnID: tx.ID})
			continue
		}
		res.Txns = append(res.Txns, tx)
	}
	return res, nil
}

// discard removes an empty transaction's journal.
func discard(store *txn.Store, tx *txn.Txn) error {
	return store.Discard(tx.ID)
}

// SortChecks orders results by id (for tests and stable output).
func SortChecks(cs []api.Check) {
	slices.SortFunc(cs, func(a, b api.Check) int { return strings.Compare(a.ID, b.ID) })
}
