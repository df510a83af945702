package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/cortexrt/cortex/internal/cgroups"
	"github.com/cortexrt/cortex/internal/kerneltest"
	"github.com/cortexrt/cortex/internal/sandbox"
	"golang.org/x/sys/unix"
)

// The test binary doubles as the sandbox init (sandbox.Start re-execs
// /proc/self/exe with sandbox.InitArg).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == sandbox.InitArg {
		sandbox.Init()
	}
	os.Exit(m.Run())
}

// fakeWiring records its calls; failPrepare and failWire make those fail.
type fakeWiring struct {
	failPrepare, failWire error

	mu       sync.Mutex
	prepared bool
	wiredPid int
	closed   bool
}

var _ Wiring = (*fakeWiring)(nil)

func (w *fakeWiring) Prepare(context.Context, AgentInfo, *sandbox.Spec) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.prepared = true
	return w.failPrepare
}

func (w *fakeWiring) Wire(_ context.Context, _ AgentInfo, pid int) (io.Closer, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.wiredPid = pid
	if w.failWire != nil {
		return nil, w.failWire
	}
	return w, nil
}

func (w *fakeWiring) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	return nil
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestStartRollback: a start that fails at any step leaves nothing
// behind: no cgroup, no sandbox init, no open descriptor (FIFOs, the
// control socket, the grants' detached mounts), every wiring that was
// made closed again; and the error is the failing step's, as it was.
func TestStartRollback(t *testing.T) {
	kerneltest.RequireRoot(t)
	wireErr := errors.New("wire refused")
	prepErr := errors.New("prepare refused")
	for _, tc := range []struct {
		name    string
		confine bool
		read    []string
		setup   func(t *testing.T, f *specFixture, a *agent)
		wirings func() []*fakeWiring
		check   func(t *testing.T, err error)
		// wired: the wirings' Wire ran with the init's pid.
		wired bool
	}{
		{
			name: "spec", confine: true, read: []string{"pub"},
			setup: func(t *testing.T, f *specFixture, a *agent) {
				// The project directory replaced: refused at project-dir.
				if err := os.Rename(f.dir, f.dir+".old"); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(f.dir, 0o755); err != nil {
					t.Fatal(err)
				}
			},
			wirings: func() []*fakeWiring { return []*fakeWiring{{}} },
			check: func(t *testing.T, err error) {
				var se *sandbox.StartError
				if !errors.As(err, &se) || se.Step != "project-dir" {
					t.Errorf("start: %v, want a StartError at project-dir", err)
				}
			},
		},
		{
			name: "prepare", confine: true, read: []string{"pub"},
			wirings: func() []*fakeWiring { return []*fakeWiring{{}, {failPrepare: prepErr}} },
			check: func(t *testing.T, err error) {
				if err != prepErr {
					t.Errorf("start: %v, want the wiring's error as it is", err)
				}
			},
		},
		{
			name:    "wire",
			wirings: func() []*fakeWiring { return []*fakeWiring{{}, {failWire: wireErr}} },
			check: func(t *testing.T, err error) {
				var se *sandbox.StartError
				if !errors.As(err, &se) || se.Step != "prepare" || !errors.Is(err, wireErr) {
					t.Errorf("start: %v, want a StartError at prepare wrapping the wiring's error", err)
				}
			},
			wired: true,
		},
		{
			name: "cgroup",
			setup: func(t *testing.T, f *specFixture, a *agent) {
				a.spec.Limits.CPU = -1 // refused by cgroups.Limits.Validate
			},
			wirings: func() []*fakeWiring { return []*fakeWiring{{}} },
			check: func(t *testing.T, err error) {
				var se *sandbox.StartError
				if !errors.As(err, &se) || se.Step != "prepare" || !strings.Contains(err.Error(), "cgroup: ") {
					t.Errorf("start: %v, want a StartError at prepare from the cgroup", err)
				}
			},
			wired: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSpecFixture(t, tc.confine, tc.read, nil)
			parent := fmt.Sprintf("cortex-test-start-%d", os.Getpid())
			cgm, err := cgroups.New(parent, nil)
			if err != nil {
				kerneltest.Missing(t, "cgroups: "+err.Error())
			}
			t.Cleanup(func() {
				if err := cgm.RemoveParent(); err != nil {
					t.Errorf("remove the cgroup parent: %v", err)
				}
			})
			f.opts.Cgroups = cgm
			f.opts.RunDir = t.TempDir()
			ws := tc.wirings()
			for _, w := range ws {
				f.opts.Wirings = append(f.opts.Wirings, w)
			}
			s := New(f.opts)
			a := s.newAgent(f.in.Project, f.in.Agent)
			a.uid = f.in.UID
			if tc.setup != nil {
				tc.setup(t, f, a)
			}

			// Once first: the runtime opens what it keeps (the poller).
			_, _ = a.start(context.Background())
			before := openFDs(t)
			for _, w := range ws {
				*w = fakeWiring{failPrepare: w.failPrepare, failWire: w.failWire}
			}
			proc, err := a.start(context.Background())
			if proc != nil || err == nil {
				t.Fatalf("start: %v, %v; want a failure", proc, err)
			}
			tc.check(t, err)
			if after := openFDs(t); after != before {
				t.Errorf("%d descriptors open after the start, %d before", after, before)
			}
			if names, err := cgm.List(); err != nil || len(names) != 0 {
				t.Errorf("cgroups left: %v %v", names, err)
			}
			for i, w := range ws {
				w.mu.Lock()
				pid, closed := w.wiredPid, w.closed
				w.mu.Unlock()
				if !tc.wired {
					if pid != 0 {
						t.Errorf("wiring %d wired pid %d", i, pid)
					}
					continue
				}
				if pid == 0 {
					t.Errorf("wiring %d not wired", i)
					continue
				}
				if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
					t.Errorf("sandbox init %d still there (kill 0: %v)", pid, err)
				}
				if w.failWire == nil && !closed {
					t.Errorf("wiring %d not closed", i)
				}
			}
		})
	}
}
