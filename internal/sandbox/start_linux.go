package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/logkey"
	"golang.org/x/sys/unix"
)

// InitArg is the argv[1] that makes cortexd run as the sandbox init.
const InitArg = "init"

// Namespaces every sandbox gets at clone time. The cgroup namespace is
// entered by the init itself once it has been placed in its cgroup.
const cloneFlags = unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWNET

// StartOptions are the daemon-side parts of a start.
type StartOptions struct {
	// InitPath is the binary re-exec'd as the init; default /proc/self/exe.
	InitPath string
	// Stdout and Stderr receive the agent's output (the write ends of the
	// log FIFOs).
	Stdout, Stderr *os.File
	// Keep are extra files the init holds open for its whole life and
	// never reads (the read ends of the log FIFOs, so the agent never gets
	// EPIPE while the daemon is down).
	Keep []*os.File
	// Prepare runs once the init exists, while it builds the sandbox
	// (mounts, privileges, Landlock), and before it enters its cgroup
	// namespace, loads seccomp and starts the agent: put it in its cgroup,
	// attach the egress gateway to its network namespace. An error aborts
	// the start.
	Prepare func(pid int) error
	Logger  *slog.Logger
}

// StartError is a start that failed at a known step; Step is "prepare",
// "exec" or the init's step name ("mount", "seccomp", ...).
type StartError struct {
	Step string
	Err  error
}

func (e *StartError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

type ctrlMsg struct {
	Type  ctrlType `json:"type"`
	Spec  *Spec    `json:"spec,omitempty"`
	Pid   int      `json:"pid,omitempty"`
	Step  string   `json:"step,omitempty"`
	Error string   `json:"error,omitempty"`
	Level string   `json:"level,omitempty"`
	Msg   string   `json:"msg,omitempty"`
}

// Start creates the init in new namespaces, sends it the spec, runs
// opts.Prepare while the init builds the sandbox, then lets it start the
// agent and waits until the agent process has been started (or a step
// failed). The returned Process is the init.
//
// The daemon's side of a start is startSteps, in order; the first that
// fails ends the start, and one deferred rollback kills the init (if it
// was cloned) and closes the control socket.
func Start(ctx context.Context, spec Spec, opts StartOptions) (_ *Process, err error) {
	s := &starting{spec: spec, opts: opts, log: opts.Logger, initPath: opts.InitPath}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.initPath == "" {
		s.initPath = "/proc/self/exe"
	}
	defer func() { s.finish(err != nil) }()
	for _, step := range startSteps {
		t0 := time.Now()
		if err := step.run(s, ctx); err != nil {
			return nil, err
		}
		s.log.Debug("sandbox start step", logkey.Sandbox, spec.ID, logkey.Step, step.name, logkey.Took, time.Since(t0))
	}
	return s.p, nil
}

// startStep is one step of the daemon's side of a start. A failing step
// returns a *StartError: "exec" for the daemon's own plumbing, "prepare"
// for opts.Prepare, or the step the init reports.
type startStep struct {
	name string
	run  func(s *starting, ctx context.Context) error
}

// startSteps are the daemon's side of a start. The init builds the
// sandbox (its Steps up to the cgroup namespace) from "send-spec" on, in
// parallel with "prepare"; it runs the rest of its Steps and the agent
// only after "send-go".
var startSteps = []startStep{
	{"socket", (*starting).socket},       // the control socket pair
	{"devnull", (*starting).openDevNull}, // the init's stdin
	{"command", (*starting).command},     // argv, env, output, kept files, namespaces
	{"clone", (*starting).clone},         // the init, in its new namespaces
	{"send-spec", (*starting).sendSpec},  // what the init builds
	{"prepare", (*starting).prepare},     // opts.Prepare (cgroup, wiring), while it builds
	{"send-go", (*starting).sendGo},      // the init may run the agent
	{"started", (*starting).waitStarted}, // the init reports the agent's pid, or its failed step
}

// starting is one start in progress: what its steps share.
type starting struct {
	spec     Spec
	opts     StartOptions
	log      *slog.Logger
	initPath string

	parent  *os.File // the daemon's end of the control socket
	child   *os.File // the init's end
	devnull *os.File
	cmd     *exec.Cmd
	p       *Process // once the init is cloned
}

// finish releases what only the start needed, and on failure first
// rolls back: the init is killed and reaped, the control socket closed.
func (s *starting) finish(failed bool) {
	if failed {
		if s.p != nil {
			_ = s.p.Signal(unix.SIGKILL)
			<-s.p.done
		}
		if s.parent != nil {
			s.parent.Close()
		}
	}
	if s.devnull != nil {
		s.devnull.Close()
	}
	if s.child != nil {
		s.child.Close()
	}
}

func (s *starting) socket(context.Context) error {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return &StartError{"exec", fmt.Errorf("socketpair: %w", err)}
	}
	s.parent = os.NewFile(uintptr(fds[0]), "sandbox-ctrl")
	s.child = os.NewFile(uintptr(fds[1]), "sandbox-ctrl-child")
	return nil
}

func (s *starting) openDevNull(context.Context) error {
	f, err := os.Open(os.DevNull)
	if err != nil {
		return &StartError{"exec", err}
	}
	s.devnull = f
	return nil
}

func (s *starting) command(context.Context) error {
	cmd := exec.Command(s.initPath, InitArg)
	cmd.Args[0] = "cortex-init"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "CORTEX_SANDBOX_ID=" + s.spec.ID}
	cmd.Stdin = s.devnull
	cmd.Stdout = s.opts.Stdout
	cmd.Stderr = s.opts.Stderr
	cmd.ExtraFiles = append([]*os.File{s.child}, s.opts.Keep...)
	// Detached mounts of checked directories follow the kept files; the
	// spec sent to the init names each one's descriptor number.
	if s.spec.Rootfs != nil {
		binds := append([]Bind(nil), s.spec.Rootfs.Binds...)
		for i := range binds {
			if binds[i].Tree != nil {
				binds[i].TreeFD = ctrlFD + len(cmd.ExtraFiles)
				cmd.ExtraFiles = append(cmd.ExtraFiles, binds[i].Tree)
			}
		}
		rfs := *s.spec.Rootfs
		rfs.Binds = binds
		s.spec.Rootfs = &rfs
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: cloneFlags,
		Setsid:     true, // its own session: a daemon's terminal signals never reach agents
	}
	s.cmd = cmd
	return nil
}

func (s *starting) clone(context.Context) error {
	if err := s.cmd.Start(); err != nil {
		return &StartError{"exec", fmt.Errorf("start sandbox init %s: %w", s.initPath, err)}
	}
	p := &Process{Pid: s.cmd.Process.Pid, ExitFile: s.spec.ExitFile, done: make(chan struct{})}
	p.StartTime, _ = StartTime(p.Pid)
	go p.waitChild(s.cmd)
	s.p = p
	return nil
}

// sendSpec starts the init building the sandbox; it waits for "go"
// before any agent code can run.
func (s *starting) sendSpec(context.Context) error {
	s.spec.Keep = len(s.opts.Keep)
	msg, _ := json.Marshal(ctrlMsg{Type: ctrlSpec, Spec: &s.spec})
	if _, err := s.parent.Write(append(msg, '\n')); err != nil {
		return &StartError{"exec", fmt.Errorf("send spec: %w", err)}
	}
	return nil
}

func (s *starting) prepare(context.Context) error {
	if s.opts.Prepare == nil {
		return nil
	}
	if err := s.opts.Prepare(s.p.Pid); err != nil {
		return &StartError{"prepare", err}
	}
	return nil
}

func (s *starting) sendGo(context.Context) error {
	if _, err := s.parent.Write(ctrlGoLine); err != nil {
		return &StartError{"exec", fmt.Errorf("send go: %w", err)}
	}
	return nil
}

// waitStarted reads the init's replies until it reports the agent
// started or a failed step, relaying its log lines; once started, the
// relay carries on until the init exits.
func (s *starting) waitStarted(ctx context.Context) error {
	type reply struct {
		msg ctrlMsg
		err error
	}
	replies := make(chan reply, 1)
	rd := bufio.NewReader(s.parent)
	parent, log, id := s.parent, s.log, s.spec.ID
	go func() {
		for {
			line, err := rd.ReadBytes('\n')
			if err != nil {
				replies <- reply{err: err}
				return
			}
			var m ctrlMsg
			if err := json.Unmarshal(line, &m); err != nil {
				continue
			}
			if m.Type == ctrlLog {
				log.Log(context.Background(), levelOf(m.Level), m.Msg, logkey.Sandbox, id)
				continue
			}
			replies <- reply{msg: m}
			if m.Type == ctrlStarted {
				// Keep relaying the init's log lines until it exits.
				for {
					line, err := rd.ReadBytes('\n')
					if err != nil {
						parent.Close()
						return
					}
					if json.Unmarshal(line, &m) == nil && m.Type == ctrlLog {
						log.Log(context.Background(), levelOf(m.Level), m.Msg, logkey.Sandbox, id)
					}
				}
			}
			return
		}
	}()
	select {
	case r := <-replies:
		switch {
		case r.err != nil:
			// The init died before reporting; its stderr went to the log.
			<-s.p.done
			return &StartError{"exec", fmt.Errorf("sandbox init exited before the agent started (%s)", s.p.status.describe())}
		case r.msg.Type == ctrlError:
			return &StartError{r.msg.Step, errors.New(r.msg.Error)}
		case r.msg.Type == ctrlStarted:
			s.p.AgentPid = r.msg.Pid
			return nil
		default:
			return &StartError{"exec", fmt.Errorf("unexpected message %q from init", r.msg.Type)}
		}
	case <-ctx.Done():
		return &StartError{"exec", ctx.Err()}
	}
}

func levelOf(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Process is a running sandbox, seen from the daemon: the init's pid.
type Process struct {
	Pid       int    // the init, in the host's pid namespace
	StartTime uint64 // of the init, in clock ticks since boot (guards against pid reuse)
	AgentPid  int    // the agent, in the sandbox's pid namespace
	ExitFile  string

	done   chan struct{}
	once   sync.Once
	status ExitStatus
	err    error
}

func (p *Process) waitChild(cmd *exec.Cmd) {
	err := cmd.Wait()
	var st ExitStatus
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		st = fromWaitStatus(ws)
	} else if err != nil {
		p.err = err
	}
	p.finish(st)
}

func (p *Process) finish(initStatus ExitStatus) {
	p.once.Do(func() {
		// The init's own record of the agent is the better answer; it is
		// missing when the init itself was killed (SIGKILL of the whole
		// sandbox, an OOM kill of the init).
		if st, ok := ReadExitFile(p.ExitFile); ok {
			p.status = st
		} else {
			initStatus.Source = "wait"
			p.status = initStatus
		}
		close(p.done)
	})
}

func fromWaitStatus(ws syscall.WaitStatus) ExitStatus {
	switch {
	case ws.Exited():
		return ExitStatus{Code: ws.ExitStatus(), Source: "wait"}
	case ws.Signaled():
		return ExitStatus{Code: 128 + int(ws.Signal()), Signal: unix.SignalName(ws.Signal()), Source: "wait"}
	}
	return ExitStatus{Code: -1, Source: "wait"}
}

func (s ExitStatus) describe() string {
	if s.Signal != "" {
		return "signal " + s.Signal
	}
	return "exit code " + strconv.Itoa(s.Code)
}

// Done is closed when the sandbox has ended.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait blocks until the sandbox ends and returns the agent's status.
func (p *Process) Wait(ctx context.Context) (ExitStatus, error) {
	select {
	case <-p.done:
		return p.status, p.err
	case <-ctx.Done():
		return ExitStatus{}, ctx.Err()
	}
}

// Signal sends sig to the init, which forwards it to the agent (SIGKILL
// ends the whole pid namespace). It reports NotFound once the init is gone.
func (p *Process) Signal(sig unix.Signal) error {
	select {
	case <-p.done:
		return errdefs.New(errdefs.NotFound, "sandbox process %d has exited", p.Pid)
	default:
	}
	if st, err := StartTime(p.Pid); err != nil || (p.StartTime != 0 && st != p.StartTime) {
		return errdefs.New(errdefs.NotFound, "sandbox process %d has exited", p.Pid)
	}
	if err := unix.Kill(p.Pid, sig); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return errdefs.New(errdefs.NotFound, "sandbox process %d has exited", p.Pid)
		}
		return err
	}
	return nil
}

// Reattach finds a sandbox started by an earlier daemon: pid must still be
// the same process (its start time matches). The returned Process learns
// the exit through a pidfd, and the status from the exit file.
func Reattach(pid int, startTime uint64, exitFile string) (*Process, error) {
	st, err := StartTime(pid)
	if err != nil || st != startTime {
		return nil, errdefs.New(errdefs.NotFound, "sandbox process %d is gone", pid)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, errdefs.New(errdefs.NotFound, "pidfd_open %d: %v", pid, err)
	}
	// Re-check after opening the pidfd: the pid could have been reused in
	// between.
	if st2, err := StartTime(pid); err != nil || st2 != startTime {
		unix.Close(fd)
		return nil, errdefs.New(errdefs.NotFound, "sandbox process %d is gone", pid)
	}
	p := &Process{Pid: pid, StartTime: startTime, ExitFile: exitFile, done: make(chan struct{})}
	go func() {
		defer unix.Close(fd)
		for {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			_, err := unix.Poll(fds, -1)
			if err == nil || !errors.Is(err, unix.EINTR) {
				break
			}
		}
		// Not our child: the exit code is only in the exit file.
		p.finish(ExitStatus{Code: -1, Signal: "unknown"})
	}()
	return p, nil
}

// StartTime returns the start time of pid (field 22 of /proc/pid/stat).
func StartTime(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); start time is field 22.
	if len(fields) < 20 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	if fields[0] == "Z" || fields[0] == "X" {
		return 0, fmt.Errorf("process %d is a zombie", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// ReadExitFile reads the status the init recorded.
func ReadExitFile(path string) (ExitStatus, bool) {
	if path == "" {
		return ExitStatus{}, false
	}
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		return ExitStatus{}, false
	}
	var st ExitStatus
	if json.Unmarshal(data, &st) != nil {
		return ExitStatus{}, false
	}
	st.Source = "init"
	return st, true
}
