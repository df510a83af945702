package doctor

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/errdefs"
)

func fn(id string, deps []string, r func(ctx context.Context) Result) *Func {
	return &Func{Meta: Info{ID: id, Title: id, DependsOn: deps}, RunFunc: r}
}

func byID(cs []api.Check) map[string]api.Check {
	m := map[string]api.Check{}
	for _, c := range cs {
		m[c.ID] = c
	}
	return m
}

func TestRunnerDependenciesTimeoutIgnore(t *testing.T) {
	var ranB atomic.Bool
	checks := []Check{
		fn("a.fails", nil, func(context.Context) Result { return Fail(nil, "broken") }),
		fn("b.needs-a", []string{"a.fails"}, func(context.Context) Result { ranB.Store(true); return OK("x") }),
		fn("c.needs-b", []string{"b.needs-a"}, func(context.Context) Result { return OK("x") }),
		fn("d.hangs", nil, func(ctx context.Context) Result { <-make(chan struct{}); return OK("never") }),
		fn("e.ok", nil, func(context.Context) Result { return OK("fine") }),
		fn("f.warns", nil, func(context.Context) Result { return Warn(Manual("do x", "x"), "meh") }),
		fn("g.panics", nil, func(context.Context) Result { panic("boom") }),
	}
	res, err := Run(context.Background(), checks, Options{Timeout: 200 * time.Millisecond, Ignore: []string{"f.*"}, Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	m := byID(res)
	want := map[string]api.CheckStatus{"a.fails": api.CheckFail, "b.needs-a": api.CheckSkip, "c.needs-b": api.CheckSkip,
		"d.hangs": api.CheckFail, "e.ok": api.CheckOK, "f.warns": api.CheckSkip, "g.panics": api.CheckFail}
	for id, st := range want {
		if m[id].Status != st {
			t.Errorf("%s: %s (%s), want %s", id, m[id].Status, m[id].Evidence, st)
		}
	}
	if ranB.Load() {
		t.Error("a check ran although its dependency failed")
	}
	if !strings.Contains(m["b.needs-a"].Evidence, "needs a.fails, which failed") || !strings.Contains(m["c.needs-b"].Evidence, "needs b.needs-a") {
		t.Errorf("skip reasons: %q, %q", m["b.needs-a"].Evidence, m["c.needs-b"].Evidence)
	}
	if !strings.Contains(m["d.hangs"].Evidence, "did not answer within 200ms") {
		t.Errorf("timeout evidence %q", m["d.hangs"].Evidence)
	}
	if !strings.Contains(m["f.warns"].Evidence, "ignored (--ignore f.*)") {
		t.Errorf("ignored: %q", m["f.warns"].Evidence)
	}
	if !strings.Contains(m["g.panics"].Evidence, "crashed: boom") {
		t.Errorf("panic: %q", m["g.panics"].Evidence)
	}
	for i, c := range res {
		if c.ID != checks[i].Info().ID || c.Source != "test" || c.DependsOn == nil {
			t.Errorf("result %d: %+v (order, source, depends_on)", i, c)
		}
	}
	rep := api.DoctorReport{Checks: res}
	rep.Tally()
	if rep.ExitCode != 2 || rep.Summary.Fail != 3 || rep.Summary.Skip != 3 || rep.Summary.OK != 1 {
		t.Errorf("tally %+v exit %d", rep.Summary, rep.ExitCode)
	}
}

func TestRunnerSelection(t *testing.T) {
	var ran []string
	mk := func(id string, deps ...string) Check {
		return fn(id, deps, func(context.Context) Result { return OK("%s", id) })
	}
	checks := []Check{mk("kernel.a"), mk("kernel.b"), mk("x.c", "kernel.a"), mk("y.d")}
	res, err := Run(context.Background(), checks, Options{Only: []string{"x.c"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res {
		ran = append(ran, c.ID)
	}
	if strings.Join(ran, ",") != "kernel.a,x.c" {
		t.Errorf("--check x.c ran %v, want its dependency too", ran)
	}
	_, err = Run(context.Background(), checks, Options{Only: []string{"nope.*"}})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), `no check matches "nope.*"`) || errdefs.HintOf(err) == "" {
		t.Errorf("unknown pattern: %v", err)
	}
	_, err = Run(context.Background(), checks, Options{Ignore: []string{"kernel.zz"}})
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("unknown ignore: %v", err)
	}
	// Warnings only: exit 1.
	rep := api.DoctorReport{Checks: []api.Check{{Status: api.CheckOK}, {Status: api.CheckWarn}, {Status: api.CheckSkip}}}
	rep.Tally()
	if rep.ExitCode != 1 {
		t.Errorf("warn-only exit %d", rep.ExitCode)
	}
	rep = api.DoctorReport{Checks: []api.Check{{Status: api.CheckOK}, {Status: api.CheckSkip}}}
	rep.Tally()
	if rep.ExitCode != 0 {
		t.Errorf("ok exit %d", rep.ExitCode)
	}
}

// TestRunnerParallel: every check starts before any finishes (each waits
// for all to have started; run one by one, they would time out).
func TestRunnerParallel(t *testing.T) {
	const n = 8
	var started atomic.Int32
	all := make(chan struct{})
	var checks []Check
	for i := 0; i < n; i++ {
		checks = append(checks, fn("p."+string(rune('a'+i)), nil, func(ctx context.Context) Result {
			if started.Add(1) == n {
				close(all)
			}
			select {
			case <-all:
				return OK("all started")
			case <-ctx.Done():
				return Fail(nil, "alone")
			}
		}))
	}
	res, err := Run(context.Background(), checks, Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res {
		if c.Status != api.CheckOK {
			t.Errorf("%s: %s %s", c.ID, c.Status, c.Evidence)
		}
	}
}
