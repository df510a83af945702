package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cortexrt/cortex/internal/cgroups"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/events"
	"github.com/cortexrt/cortex/internal/logkey"
	"github.com/cortexrt/cortex/internal/logs"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/sandbox"
	"github.com/cortexrt/cortex/internal/store"
	"golang.org/x/sys/unix"
)

// agent is one agent's watcher. Its loop goroutine owns starting,
// waiting and restarting; the API methods (kill, suspend, resume) change
// state under mu and signal the loop.
type agent struct {
	s       *Supervisor
	project string
	name    string
	spec    manifest.ResolvedAgent
	proj    store.Project
	uid     int
	runDir  string

	mu             sync.Mutex
	rec            store.Agent
	proc           *sandbox.Process
	cg             cgroups.Group
	closers        []io.Closer
	collectors     sync.WaitGroup
	stopCollect    context.CancelFunc
	stopReq        bool
	restartPending bool
	cpuAt          time.Time
	cpuNS          uint64
	lastOOM        *OOMReport

	wake     chan struct{} // interrupts a backoff sleep
	detached chan struct{} // daemon shutting down: stop watching
	detachMu sync.Once
	done     chan struct{} // loop returned
}

func (s *Supervisor) newAgent(p store.Project, ra manifest.ResolvedAgent) *agent {
	return &agent{
		s:        s,
		project:  p.Name,
		name:     ra.Name,
		spec:     ra,
		proj:     p,
		runDir:   filepath.Join(s.opts.RunDir, p.Name, ra.Name),
		wake:     make(chan struct{}, 1),
		detached: make(chan struct{}),
		done:     make(chan struct{}),
	}
}

func (a *agent) cgroupName() string { return a.project + "/" + a.name }

func (a *agent) detach() {
	a.detachMu.Do(func() { close(a.detached) })
}

// waitDone waits for the loop (if one runs) to return.
func (a *agent) waitDone() { <-a.done }

func (a *agent) stopRequested() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stopReq
}

// loop runs the agent until it ends for good. proc is a reattached
// sandbox; lost is the status of a run that ended while the daemon was
// down (its cgroup, if any, is still in a.cg for the OOM check).
func (a *agent) loop(proc *sandbox.Process, lost *sandbox.ExitStatus) {
	defer close(a.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-a.detached:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		var st sandbox.ExitStatus
		var startErr error
		switch {
		case lost != nil:
			st, lost = *lost, nil
		case proc != nil:
			select {
			case <-proc.Done():
				st, _ = proc.Wait(ctx)
			case <-a.detached:
				a.stopCollectors()
				return
			}
		default:
			if a.stopRequested() {
				a.setEnded(Stopped, ReasonKilled, nil, false)
				return
			}
			proc, startErr = a.start(ctx)
			if startErr == nil {
				continue
			}
			select {
			case <-a.detached:
				return
			default:
			}
		}
		state, reason, code := a.classify(st, startErr)
		a.endRun()
		proc = nil

		a.mu.Lock()
		restarts := a.rec.Restarts
		stopReq := a.stopReq
		a.mu.Unlock()
		want := !stopReq && a.wantsRestart(state)
		if want && startErr != nil && errdefs.IsPermissionDenied(startErr) {
			// A refused start (the project directory changed, a grant
			// leads out of it) does not heal by retrying.
			want = false
			a.system(logs.LevelWarn, "start refused; not restarting (the restart policy does not apply to a refusal)", nil)
		}
		if want && restarts >= a.spec.MaxRestarts {
			want = false
			a.system(logs.LevelError, fmt.Sprintf("restart limit reached (max_restarts %d); the last run ended %s (%s)", a.spec.MaxRestarts, state, reason), nil)
			reason = ReasonRestartLimit
		}
		a.setEnded(state, reason, code, want)
		if !want {
			return
		}
		delay := backoff(a.s.opts.BackoffInitial, a.s.opts.BackoffMax, restarts)
		a.system(logs.LevelInfo, fmt.Sprintf("restarting in %s (restart %d of %d)", delay, restarts+1, a.spec.MaxRestarts), nil)
		a.s.events.Emit(events.Event{Project: a.project, Agent: a.name, Run: restarts, Detail: events.AgentRestartDetail{Delay: delay, Restarts: restarts + 1, Reason: reason}})
		select {
		case <-time.After(delay):
		case <-a.wake:
		case <-a.detached:
			return
		}
		a.mu.Lock()
		a.restartPending = false
		stopReq = a.stopReq
		code = a.rec.ExitCode
		if !stopReq {
			a.rec.Restarts++
		}
		a.mu.Unlock()
		if stopReq {
			a.setEnded(Stopped, ReasonKilled, code, false)
			return
		}
	}
}

func (a *agent) wantsRestart(state State) bool {
	switch a.spec.RestartPolicy {
	case manifest.RestartAlways:
		return true
	case manifest.RestartOnFailure:
		return state == Failed
	}
	return false
}

// backoff is initial * 2^n, capped.
func backoff(initial, max time.Duration, n int) time.Duration {
	d := initial
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}

// classify turns how a run ended into state, reason and exit code.
func (a *agent) classify(st sandbox.ExitStatus, startErr error) (State, string, *int) {
	if startErr != nil {
		return Failed, ReasonStartError + ": " + startErrText(startErr), nil
	}
	code := st.Code
	a.mu.Lock()
	cg, stopReq := a.cg, a.stopReq
	a.mu.Unlock()
	var ooms uint64
	if cg != nil {
		ooms, _ = cg.OOMKills()
	}
	switch {
	case ooms > 0 && (st.Signaled() || code != 0):
		a.reportOOM(cg)
		return Failed, ReasonOOMKilled, &code
	case stopReq:
		return Stopped, ReasonKilled, &code
	case st.Signal == "unknown":
		// Reattached, and the init left no status: it was killed with the
		// whole sandbox while the daemon was down.
		return Failed, ReasonLost, nil
	case st.Signaled():
		return Failed, ReasonKilled, &code
	case code == 0:
		return Stopped, ReasonExited, &code
	}
	return Failed, ReasonExited, &code
}

// reportOOM records what the agent's memory was made of at its OOM kill
// (the cgroup still exists: endRun deletes it later), for inspect and in
// the agent's log.
func (a *agent) reportOOM(cg cgroups.Group) {
	ms, err := cg.MemoryStat()
	if err != nil {
		a.s.log.Warn("read memory.stat after an OOM kill", logkey.Project, a.project, logkey.Agent, a.name, logkey.Err, err)
		return
	}
	a.mu.Lock()
	r := &OOMReport{Run: a.rec.Restarts, Time: time.Now(), Limit: uint64(a.spec.Limits.Memory),
		Peak: ms.Peak, Usage: ms.Usage, Anon: ms.Anon, File: ms.File, Shmem: ms.Shmem, Kernel: ms.Kernel, Sock: ms.Sock}
	a.lastOOM = r
	a.mu.Unlock()
	a.s.events.Emit(events.Event{Project: a.project, Agent: a.name, Run: r.Run, Detail: events.AgentOOMDetail{
		LimitBytes: int64(r.Limit), Usage: map[string]int64{"peak": int64(r.Peak), "usage": int64(r.Usage), "anon": int64(r.Anon),
			"file": int64(r.File), "shmem": int64(r.Shmem), "kernel": int64(r.Kernel), "sock": int64(r.Sock)}}})
	a.system(logs.LevelError, "out of memory", map[string]any{
		"limit": r.Limit, "peak": r.Peak, "usage": r.Usage, "anon": r.Anon, "file": r.File,
		"shmem": r.Shmem, "kernel": r.Kernel, "sock": r.Sock,
	})
}

func startErrText(err error) string {
	var se *sandbox.StartError
	if errors.As(err, &se) {
		return se.Error()
	}
	return err.Error()
}

// start builds and starts one run of the agent: agentStartSteps, in
// order. The first that fails ends the start, and one deferred rollback
// undoes what the earlier ones made.
func (a *agent) start(ctx context.Context) (_ *sandbox.Process, err error) {
	a.mu.Lock()
	s := &agentStart{a: a, run: a.rec.Restarts}
	a.mu.Unlock()
	t0 := time.Now()
	a.setState(Starting, "", nil)
	defer func() { s.finish(err != nil) }()
	for _, step := range agentStartSteps {
		t := time.Now()
		if err := step.run(s, ctx); err != nil {
			return nil, err
		}
		a.s.log.Debug("agent start step", logkey.Project, a.project, logkey.Agent, a.name, logkey.Step, step.name, logkey.Took, time.Since(t))
	}
	a.started(s, t0)
	return s.proc, nil
}

// agentStartStep is one step of an agent's start. Its error is the
// start's, as it is (a *sandbox.StartError where it names a step).
type agentStartStep struct {
	name string
	run  func(s *agentStart, ctx context.Context) error
}

// agentStartSteps are an agent's start. The cgroup is made in the
// background from "cgroup" on (mkdir in every v1 hierarchy takes a few
// ms), and the init is placed in it while it builds the sandbox.
var agentStartSteps = []agentStartStep{
	{"run-dir", (*agentStart).makeRunDir},     // the agent's host runtime directory
	{"fifos", (*agentStart).openFIFOs},        // its stdout and stderr
	{"cgroup", (*agentStart).makeCgroup},      // in the background: waited for by "sandbox"
	{"spec", (*agentStart).buildSpec},         // the sandbox spec (checks the project directory)
	{"wirings", (*agentStart).prepareWirings}, // each Wiring's Prepare amends the spec
	{"sandbox", (*agentStart).startInit},      // sandbox.Start; meanwhile: cgroup placement, wiring
}

// agentStart is one start of an agent in progress: what its steps share.
type agentStart struct {
	a   *agent
	run int

	fifos   *fifos
	cgMade  chan cgroupMade // the background cgroup creation, until waited for
	cg      cgroups.Group
	spec    sandbox.Spec // set once built
	info    AgentInfo
	closers []io.Closer // of the wirings
	proc    *sandbox.Process
}

type cgroupMade struct {
	g   cgroups.Group
	err error
}

// finish releases what only the start needed (the init holds its own
// copies of the FIFOs' child ends and of the grants' detached mounts),
// and on failure first rolls back: the daemon's FIFO ends, the wirings,
// the cgroup (waited for if still being made).
func (s *agentStart) finish(failed bool) {
	if failed {
		if s.fifos != nil {
			s.fifos.closeParentEnds()
		}
		for _, c := range s.closers {
			_ = c.Close()
		}
		_ = s.cgroupReady()
		if s.cg != nil {
			_ = s.cg.Delete()
		}
	}
	s.spec.CloseFiles()
	if s.fifos != nil {
		s.fifos.closeChildEnds()
	}
}

func (s *agentStart) makeRunDir(context.Context) error {
	return os.MkdirAll(s.a.runDir, 0o755)
}

func (s *agentStart) openFIFOs(context.Context) error {
	f, err := openFIFOs(s.a.runDir)
	if err != nil {
		return err
	}
	s.fifos = f
	return nil
}

// makeCgroup starts making the agent's cgroup (replacing one a previous
// run left); cgroupReady waits for it.
func (s *agentStart) makeCgroup(context.Context) error {
	cgm, name := s.a.s.opts.Cgroups, s.a.cgroupName()
	l := s.a.spec.Limits
	limits := cgroups.Limits{CPU: l.CPU, Memory: int64(l.Memory), Pids: l.Pids}
	s.cgMade = make(chan cgroupMade, 1)
	go func(made chan<- cgroupMade) {
		if old, err := cgm.Load(name); err == nil {
			_ = old.Delete()
		}
		g, err := cgm.Create(name, limits)
		made <- cgroupMade{g, err}
	}(s.cgMade)
	return nil
}

// cgroupReady waits for makeCgroup (once) and reports its error.
func (s *agentStart) cgroupReady() error {
	if s.cgMade == nil {
		return nil
	}
	m := <-s.cgMade
	s.cgMade = nil
	s.cg = m.g
	if m.err != nil {
		return fmt.Errorf("cgroup: %w", m.err)
	}
	return nil
}

func (s *agentStart) buildSpec(context.Context) error {
	spec, err := s.a.s.buildSpec(s.a, s.run)
	if err != nil {
		return err
	}
	s.spec = spec
	a := s.a
	s.info = AgentInfo{Project: a.project, Agent: a.spec, Run: s.run, UID: a.uid, GID: a.uid, RunDir: a.runDir}
	return nil
}

func (s *agentStart) prepareWirings(ctx context.Context) error {
	for _, w := range s.a.s.opts.Wirings {
		if err := w.Prepare(ctx, s.info, &s.spec); err != nil {
			return err
		}
	}
	return nil
}

func (s *agentStart) startInit(ctx context.Context) error {
	proc, err := sandbox.Start(ctx, s.spec, sandbox.StartOptions{
		InitPath: s.a.s.opts.InitPath,
		Stdout:   s.fifos.wOut,
		Stderr:   s.fifos.wErr,
		Keep:     []*os.File{s.fifos.kOut, s.fifos.kErr},
		Logger:   s.a.s.log,
		Prepare:  func(pid int) error { return s.place(ctx, pid) },
	})
	if err != nil {
		return err
	}
	s.proc = proc
	return nil
}

// place runs while the init builds the sandbox: it puts the init in its
// cgroup (moving a process into a v1 cgroup waits for an RCU grace
// period, ~10 ms, so it overlaps the wiring) and wires each subsystem to
// it.
func (s *agentStart) place(ctx context.Context, pid int) error {
	cgErr := make(chan error, 1)
	go func() {
		if err := s.cgroupReady(); err != nil {
			cgErr <- err
			return
		}
		if err := s.cg.AddProc(pid); err != nil {
			cgErr <- fmt.Errorf("place in cgroup: %w", err)
			return
		}
		cgErr <- nil
	}()
	var wireErr error
	for _, w := range s.a.s.opts.Wirings {
		c, err := w.Wire(ctx, s.info, pid)
		if err != nil {
			wireErr = err
			break
		}
		if c != nil {
			s.closers = append(s.closers, c)
		}
	}
	if err := <-cgErr; err != nil {
		return err
	}
	return wireErr
}

// started records a started run: its process, cgroup and wirings, its
// output collectors, the Running state. A kill that arrived while the
// sandbox was being built is delivered now.
func (a *agent) started(s *agentStart, t0 time.Time) {
	proc, cg := s.proc, s.cg
	a.mu.Lock()
	a.proc, a.cg, a.closers = proc, cg, s.closers
	a.rec.Pid, a.rec.PidStart = proc.Pid, proc.StartTime
	a.rec.StartedAt, a.rec.FinishedAt = time.Now(), time.Time{}
	a.rec.ExitCode = nil
	a.rec.Cgroup = cg.Name()
	a.mu.Unlock()
	a.startCollectors(s.fifos.rOut, s.fifos.rErr, s.run)
	a.s.log.Debug("agent started", logkey.Project, a.project, logkey.Agent, a.name, logkey.Took, time.Since(t0))
	a.setState(Running, "", nil)
	a.system(logs.LevelInfo, fmt.Sprintf("started (run %d, pid %d)", s.run, proc.Pid), nil)

	if a.stopRequested() {
		_ = proc.Signal(unix.SIGTERM)
	}
}

// fifos are the agent's stdout/stderr FIFOs: the daemon reads rOut/rErr,
// the init holds kOut/kErr (read ends it never reads, so writes never see
// EPIPE while the daemon is down) and hands wOut/wErr to the agent.
type fifos struct {
	rOut, rErr, kOut, kErr, wOut, wErr *os.File
}

func openFIFOs(dir string) (*fifos, error) {
	f := &fifos{}
	open := func(name string) (r, k, w *os.File, err error) {
		p := filepath.Join(dir, name)
		if err := unix.Mkfifo(p, 0o600); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, nil, nil, fmt.Errorf("mkfifo %s: %w", p, err)
		}
		if r, err = os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0); err != nil {
			return
		}
		if k, err = os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0); err != nil {
			r.Close()
			return
		}
		if w, err = os.OpenFile(p, os.O_WRONLY, 0); err != nil {
			r.Close()
			k.Close()
			return
		}
		// A bigger pipe absorbs bursts while the collector writes.
		_, _ = unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, 1<<20)
		return r, k, w, nil
	}
	var err error
	if f.rOut, f.kOut, f.wOut, err = open("stdout"); err != nil {
		return nil, err
	}
	if f.rErr, f.kErr, f.wErr, err = open("stderr"); err != nil {
		f.rOut.Close()
		f.kOut.Close()
		f.wOut.Close()
		return nil, err
	}
	return f, nil
}

func (f *fifos) closeChildEnds() {
	for _, x := range []*os.File{f.kOut, f.kErr, f.wOut, f.wErr} {
		x.Close()
	}
}

func (f *fifos) closeParentEnds() {
	f.rOut.Close()
	f.rErr.Close()
}

// reopenFIFOs opens the read ends of an existing agent's FIFOs (after a
// daemon restart).
func reopenFIFOs(dir string) (out, errf *os.File, err error) {
	if out, err = os.OpenFile(filepath.Join(dir, "stdout"), os.O_RDONLY|syscall.O_NONBLOCK, 0); err != nil {
		return nil, nil, err
	}
	if errf, err = os.OpenFile(filepath.Join(dir, "stderr"), os.O_RDONLY|syscall.O_NONBLOCK, 0); err != nil {
		out.Close()
		return nil, nil, err
	}
	return out, errf, nil
}

func (a *agent) startCollectors(out, errf *os.File, run int) {
	ctx, cancel := context.WithCancel(context.Background())
	a.mu.Lock()
	a.stopCollect = cancel
	a.mu.Unlock()
	strict := a.spec.Capabilities.Logging == "strict"
	for _, c := range []struct {
		f      *os.File
		stream string
	}{{out, logs.StreamStdout}, {errf, logs.StreamStderr}} {
		a.collectors.Add(1)
		stop := context.AfterFunc(ctx, func() { c.f.Close() })
		go func() {
			defer a.collectors.Done()
			defer stop()
			defer c.f.Close()
			err := a.s.opts.Logs.Collect(ctx, c.f, logs.Meta{Project: a.project, Agent: a.name, Run: run, Stream: c.stream, Strict: strict})
			if err != nil && ctx.Err() == nil && !errors.Is(err, os.ErrClosed) {
				a.s.log.Warn("log collector", logkey.Project, a.project, logkey.Agent, a.name, logkey.Err, err)
			}
		}()
	}
}

// stopCollectors stops reading output without draining (daemon shutdown:
// what is left in the pipes is read by the next daemon).
func (a *agent) stopCollectors() {
	a.mu.Lock()
	cancel := a.stopCollect
	a.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	a.collectors.Wait()
}

// endRun drains the output of a finished run and releases its cgroup and
// wirings.
func (a *agent) endRun() {
	drained := make(chan struct{})
	go func() {
		a.collectors.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		a.s.log.Warn("log drain timed out", logkey.Project, a.project, logkey.Agent, a.name)
	}
	a.stopCollectors()
	a.mu.Lock()
	cg, closers := a.cg, a.closers
	a.proc, a.cg, a.closers = nil, nil, nil
	a.mu.Unlock()
	for _, c := range closers {
		_ = c.Close()
	}
	if cg != nil {
		if err := cg.Delete(); err != nil {
			a.s.log.Warn("delete cgroup", logkey.Project, a.project, logkey.Agent, a.name, logkey.Err, err)
		}
	}
}

// setState records a transition that is not an end.
func (a *agent) setState(st State, reason string, code *int) {
	a.mu.Lock()
	a.rec.State, a.rec.Reason = string(st), reason
	if code != nil {
		a.rec.ExitCode = code
	}
	rec := a.rec
	a.mu.Unlock()
	a.persist(rec, false)
}

// setEnded records the end of a run.
func (a *agent) setEnded(st State, reason string, code *int, restartPending bool) {
	a.mu.Lock()
	a.rec.State, a.rec.Reason, a.rec.ExitCode = string(st), reason, code
	a.rec.FinishedAt = time.Now()
	a.rec.Pid, a.rec.PidStart = 0, 0
	a.restartPending = restartPending
	if a.stopReq {
		a.rec.Desired = "stopped"
	}
	rec := a.rec
	a.mu.Unlock()
	a.persist(rec, restartPending)
	msg := string(st)
	if reason != "" {
		msg += " (" + reason + ")"
	}
	if code != nil {
		msg += fmt.Sprintf(", exit code %d", *code)
	}
	level := logs.LevelInfo
	if st == Failed {
		level = logs.LevelError
	}
	a.system(level, msg, nil)
}

func (a *agent) persist(rec store.Agent, restartPending bool) {
	ctx := context.Background()
	if err := a.s.opts.Store.PutAgent(ctx, rec); err != nil {
		a.s.log.Error("persist agent state", logkey.Project, a.project, logkey.Agent, a.name, logkey.Err, err)
	}
	ev := store.Event{Project: rec.Project, Agent: rec.Name, Run: rec.Restarts, State: rec.State, Reason: rec.Reason, ExitCode: rec.ExitCode, Time: time.Now()}
	if err := a.s.opts.Store.AddEvent(ctx, ev); err != nil {
		a.s.log.Error("persist agent event", logkey.Project, a.project, logkey.Agent, a.name, logkey.Err, err)
	}
	a.s.publish(Event{Time: ev.Time, Project: rec.Project, Agent: rec.Name, Run: rec.Restarts, State: State(rec.State), Reason: rec.Reason, ExitCode: rec.ExitCode, RestartPending: restartPending})
}

// system writes a lifecycle line into the agent's log stream.
func (a *agent) system(level, msg string, fields map[string]any) {
	if a.s.opts.Logs == nil {
		return
	}
	a.mu.Lock()
	run := a.rec.Restarts
	a.mu.Unlock()
	_, err := a.s.opts.Logs.Append(logs.Record{Project: a.project, Agent: a.name, Run: run, Stream: logs.StreamSystem, Level: level, Message: msg, Fields: fields})
	if err != nil {
		a.s.log.Warn("append system log", logkey.Err, err)
	}
}

func (a *agent) status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return Status{
		Project:        a.project,
		Agent:          a.name,
		Description:    a.spec.Description,
		State:          State(a.rec.State),
		Reason:         a.rec.Reason,
		ExitCode:       a.rec.ExitCode,
		Pid:            a.rec.Pid,
		Restarts:       a.rec.Restarts,
		RestartPending: a.restartPending,
		StartedAt:      a.rec.StartedAt,
		FinishedAt:     a.rec.FinishedAt,
		MemoryLimit:    uint64(a.spec.Limits.Memory),
		Degraded:       a.s.opts.Sandbox.Missing,
	}
}

// fillUsage adds CPU and memory figures from the cgroup. CPU is the
// average since the previous sample (or since start).
func (a *agent) fillUsage(st *Status) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cg == nil {
		return
	}
	stats, err := a.cg.Stats()
	if err != nil {
		return
	}
	st.MemoryBytes = stats.MemoryUsage
	now := time.Now()
	prevAt, prevNS := a.cpuAt, a.cpuNS
	if prevAt.IsZero() || prevAt.Before(a.rec.StartedAt) {
		prevAt, prevNS = a.rec.StartedAt, 0
	}
	if el := now.Sub(prevAt); el > 0 && stats.CPUUsageNS >= prevNS {
		st.CPUPercent = float64(stats.CPUUsageNS-prevNS) / float64(el.Nanoseconds()) * 100
	}
	a.cpuAt, a.cpuNS = now, stats.CPUUsageNS
}

// kill stops the agent for good.
func (a *agent) kill(ctx context.Context, grace time.Duration) error {
	a.mu.Lock()
	st := State(a.rec.State)
	if !st.Active() && !a.restartPending {
		a.mu.Unlock()
		return errdefs.New(errdefs.FailedPrecondition, "agent %s/%s is not running (%s)", a.project, a.name, st)
	}
	a.stopReq = true
	a.rec.Desired = "stopped"
	select {
	case a.wake <- struct{}{}:
	default:
	}
	a.mu.Unlock()
	a.system(logs.LevelInfo, fmt.Sprintf("kill requested (grace %s)", grace), nil)

	// Wait for a start in progress to produce a process, or the loop to end.
	var proc *sandbox.Process
	var cg cgroups.Group
	for {
		a.mu.Lock()
		proc, cg, st = a.proc, a.cg, State(a.rec.State)
		a.mu.Unlock()
		if proc != nil || st != Starting {
			break
		}
		select {
		case <-a.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	if proc != nil {
		if st == Suspended && cg != nil {
			_ = cg.Thaw()
			a.setState(Running, "", nil)
		}
		_ = proc.Signal(unix.SIGTERM)
		select {
		case <-proc.Done():
		case <-time.After(grace):
			a.system(logs.LevelWarn, fmt.Sprintf("did not stop within %s; sending SIGKILL", grace), nil)
			if cg != nil {
				_ = cg.Kill()
			}
			_ = proc.Signal(unix.SIGKILL)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case <-a.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *agent) suspend(ctx context.Context) error {
	a.mu.Lock()
	st, cg := State(a.rec.State), a.cg
	a.mu.Unlock()
	if st != Running || cg == nil {
		return errdefs.New(errdefs.FailedPrecondition, "agent %s/%s is %s, not running", a.project, a.name, st)
	}
	if err := cg.Freeze(); err != nil {
		return fmt.Errorf("freeze %s/%s: %w", a.project, a.name, err)
	}
	a.setState(Suspended, "", nil)
	a.system(logs.LevelInfo, "suspended", nil)
	return nil
}

func (a *agent) resume(ctx context.Context) error {
	a.mu.Lock()
	st, cg := State(a.rec.State), a.cg
	a.mu.Unlock()
	if st != Suspended || cg == nil {
		return errdefs.New(errdefs.FailedPrecondition, "agent %s/%s is %s, not suspended", a.project, a.name, st)
	}
	if err := cg.Thaw(); err != nil {
		return fmt.Errorf("thaw %s/%s: %w", a.project, a.name, err)
	}
	a.setState(Running, "", nil)
	a.system(logs.LevelInfo, "resumed", nil)
	return nil
}

func (a *agent) inspect(ctx context.Context) (Inspection, error) {
	st := a.status()
	a.fillUsage(&st)
	a.mu.Lock()
	cgPath := ""
	if a.cg != nil {
		cgPath = a.cg.Path()
	}
	lastOOM := a.lastOOM
	a.mu.Unlock()
	hist, err := a.s.opts.Store.Events(ctx, a.project, a.name, 200)
	if err != nil {
		return Inspection{}, err
	}
	in := Inspection{
		Status:        st,
		Spec:          a.spec,
		Limits:        a.spec.Limits,
		UID:           a.uid,
		Cgroup:        cgPath,
		CgroupVersion: a.s.opts.Cgroups.Version(),
		Walls:         a.s.walls(),
		BundleDigest:  a.proj.Digest,
		BundleDir:     a.proj.BundleDir,
		SourceDir:     a.proj.SourceDir,
		History:       hist,
		LastOOM:       lastOOM,
	}
	if !a.s.opts.Sandbox.Confine {
		in.UID = 0
	}
	if a.s.opts.Logs != nil {
		in.Logs, _ = a.s.opts.Logs.Stats(a.project, a.name)
	}
	return in, nil
}

// walls lists the confinement layers and whether they are up.
func (s *Supervisor) walls() []Wall {
	so := s.opts.Sandbox
	missing := map[string]bool{}
	for _, m := range so.Missing {
		missing[strings.SplitN(m, ":", 2)[0]] = true
	}
	w := []Wall{
		{Name: "cgroup", Up: true, Detail: fmt.Sprintf("v%d", s.opts.Cgroups.Version())},
		{Name: "namespaces", Up: true, Detail: "pid, mount, uts, ipc, net, cgroup"},
		{Name: "rootfs", Up: so.Confine},
		{Name: "uid", Up: so.Confine},
		{Name: "no_new_privs+capabilities", Up: so.Confine},
		{Name: "seccomp", Up: so.Confine && so.Seccomp},
		{Name: "landlock", Up: so.Confine && so.Landlock},
	}
	for i := range w {
		if d, ok := so.WallDetails[w[i].Name]; ok && w[i].Detail == "" {
			w[i].Detail = d
		}
		if missing[w[i].Name] {
			w[i].Up = false
		}
	}
	return w
}
