package sandbox

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The init's file descriptors, as Start passes them.
const (
	ctrlFD      = 3
	firstKeepFD = 4
)

// initState is what the steps share inside the init.
type initState struct {
	spec *Spec
	ctrl *os.File
}

func (s *initState) send(m ctrlMsg) {
	b, _ := json.Marshal(m)
	// After a daemon restart nobody reads the socket; that is fine.
	_, _ = s.ctrl.Write(append(b, '\n'))
}

func (s *initState) logf(level, format string, args ...any) {
	s.send(ctrlMsg{Type: ctrlLog, Level: level, Msg: fmt.Sprintf(format, args...)})
}

// Init is the sandbox init's main. It never returns.
func Init() {
	// Namespace, credential and prctl changes below are per thread; the
	// agent is forked from this same locked thread so it inherits them.
	runtime.LockOSThread()
	// The daemon creates its files with a umask of 077; the sandbox's
	// own files (its root's directories) must be readable by the agent,
	// and the agent starts with the usual 022.
	unix.Umask(0o022)
	// Nothing the init inherited may leak into the agent.
	for fd := ctrlFD; fd < firstKeepFD+8; fd++ {
		unix.CloseOnExec(fd)
	}
	st := &initState{ctrl: os.NewFile(ctrlFD, "ctrl")}
	rd := bufio.NewReader(st.ctrl)
	line, err := rd.ReadBytes('\n')
	if err != nil {
		fmt.Fprintf(os.Stderr, "cortex-init: read spec: %v\n", err)
		os.Exit(125)
	}
	var m ctrlMsg
	if err := json.Unmarshal(line, &m); err != nil || m.Spec == nil {
		fmt.Fprintf(os.Stderr, "cortex-init: bad spec message: %v\n", err)
		os.Exit(125)
	}
	st.spec = m.Spec
	if r := st.spec.Rootfs; r != nil {
		for _, b := range r.Binds {
			if b.TreeFD > 0 {
				unix.CloseOnExec(b.TreeFD)
			}
		}
	}

	exitFile, err := os.OpenFile(st.spec.ExitFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_CLOEXEC, 0o600)
	if err != nil {
		st.send(ctrlMsg{Type: ctrlError, Step: "exitfile", Error: err.Error()})
		os.Exit(125)
	}
	waited := false
	for _, step := range Steps(st.spec) {
		if step.AfterGo && !waited {
			// The daemon has placed us in our cgroup (and attached what it
			// attaches) once it says go; nothing of the agent's runs before.
			t0 := time.Now()
			line, err := rd.ReadBytes('\n')
			if err != nil || json.Unmarshal(line, &m) != nil || m.Type != ctrlGo {
				os.Exit(125)
			}
			waited = true
			st.logf("debug", "waited %s for go", time.Since(t0))
		}
		t0 := time.Now()
		if err := step.Run(st); err != nil {
			st.send(ctrlMsg{Type: ctrlError, Step: step.Name, Error: err.Error()})
			os.Exit(125)
		}
		st.logf("debug", "step %s took %s", step.Name, time.Since(t0))
	}
	cmd, err := startAgent(st.spec)
	if err != nil {
		st.send(ctrlMsg{Type: ctrlError, Step: "exec", Error: err.Error()})
		os.Exit(125)
	}
	st.send(ctrlMsg{Type: ctrlStarted, Pid: cmd.Process.Pid})
	status := supervise(cmd.Process.Pid)
	b, _ := json.Marshal(status)
	_, _ = exitFile.Write(b)
	_ = exitFile.Close()
	// The agent is gone: end whatever it left running in the namespace,
	// then wait until the daemon has read every byte still buffered in
	// the output pipes (it may be restarting), so no output is lost.
	_ = unix.Kill(-1, unix.SIGKILL)
	reapAll()
	drain(st.spec.Keep, st.spec.DrainTimeout)
	os.Exit(status.Code & 0xff)
}

// reapAll waits for every remaining child.
func reapAll() {
	for {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(-1, &ws, 0, nil); err != nil && err != unix.EINTR {
			return
		}
	}
}

// drain waits while the kept pipe read ends (fds firstKeepFD..+n) still
// hold unread bytes, up to timeout.
func drain(n int, timeout time.Duration) {
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		pending := 0
		for fd := firstKeepFD; fd < firstKeepFD+n; fd++ {
			if v, err := unix.IoctlGetInt(fd, unix.TIOCINQ); err == nil {
				pending += v
			}
		}
		if pending == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Step is one confinement layer, applied in order inside the init.
// AfterGo steps wait until the daemon has placed the init in its cgroup.
type Step struct {
	Name    string
	Run     func(*initState) error
	AfterGo bool
}

// Steps returns the layers spec asks for, in the order the design fixes:
// namespaces (uts), filesystem, identity; then, once in the cgroup, the
// cgroup namespace (rooted at the agent's cgroup) and the syscall filter
// (which refuses unshare, so it comes last).
func Steps(spec *Spec) []Step {
	steps := []Step{
		{Name: "hostname", Run: func(s *initState) error { return unix.Sethostname([]byte(s.spec.Hostname)) }},
		{Name: "mount", Run: stepMounts},
	}
	if spec.Confine != nil {
		steps = append(steps, Step{Name: "privileges", Run: stepPrivileges})
		if spec.Confine.Landlock && spec.Rootfs != nil {
			steps = append(steps, Step{Name: "landlock", Run: stepLandlock})
		}
	}
	steps = append(steps, Step{Name: "cgroupns", Run: func(*initState) error { return unix.Unshare(unix.CLONE_NEWCGROUP) }, AfterGo: true})
	if spec.Confine != nil && spec.Confine.Seccomp {
		steps = append(steps, Step{Name: "seccomp", Run: stepSeccomp, AfterGo: true})
	}
	return steps
}

// stepMounts stops mount propagation to the host, then either builds the
// fresh root (Rootfs) or, without one, gives the agent a /proc of its own
// pid namespace.
func stepMounts(s *initState) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	// A /proc of the new pid namespace, first: pids the init sees (its
	// children's) must mean the same in /proc (writing a uid_map, say).
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	if s.spec.Rootfs != nil {
		return buildRootfs(s)
	}
	if s.spec.Dir != "" {
		return unix.Chdir(s.spec.Dir)
	}
	return nil
}

// startAgent forks the agent from the locked thread.
func startAgent(spec *Spec) (*exec.Cmd, error) {
	if len(spec.Argv) == 0 {
		return nil, fmt.Errorf("empty argv")
	}
	cmd := &exec.Cmd{Path: spec.Argv[0], Args: spec.Argv, Env: spec.Env, Dir: spec.Dir}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	cmd.Stdin = devnull
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if spec.UID != 0 || spec.GID != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(spec.UID), Gid: uint32(spec.GID), Groups: []uint32{}}
	}
	if spec.NoFile > 0 {
		lim := unix.Rlimit{Cur: spec.NoFile, Max: spec.NoFile}
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return nil, fmt.Errorf("rlimit nofile: %w", err)
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Argv[0], err)
	}
	return cmd, nil
}

// supervise forwards signals to the agent's process group and reaps every
// child until the agent itself exits.
func supervise(agent int) ExitStatus {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs)
	for {
		// Reap whatever has exited; orphans of the agent are re-parented to
		// us (pid 1) and must not become zombies.
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err != nil || pid <= 0 {
				break
			}
			if pid == agent {
				return statusOf(ws)
			}
		}
		sig := <-sigs
		switch sig {
		case unix.SIGCHLD, unix.SIGURG, unix.SIGPIPE:
			continue
		}
		if s, ok := sig.(unix.Signal); ok {
			// The agent leads its own session and process group.
			_ = unix.Kill(-agent, s)
		}
	}
}

func statusOf(ws unix.WaitStatus) ExitStatus {
	switch {
	case ws.Exited():
		return ExitStatus{Code: ws.ExitStatus()}
	case ws.Signaled():
		return ExitStatus{Code: 128 + int(ws.Signal()), Signal: unix.SignalName(ws.Signal())}
	}
	return ExitStatus{Code: 255}
}
