// Package daemontest drives real cortexd and cortex binaries for
// end-to-end tests: it builds them once, starts daemons in temporary
// CORTEX_ROOTs, runs CLI commands as a user would, and checks that a
// stopped daemon leaves no cgroup, process or mount behind.
package daemontest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/kerneltest"
	"github.com/cortexrt/cortex/internal/runtimes/runtimestest"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// ModuleRoot finds the directory holding go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Binaries builds cortex and cortexd (once per test binary) and returns
// the directory holding them (with a cortex-ops symlink).
func Binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			buildErr = err
			return
		}
		buildDir, err = os.MkdirTemp("", "cortex-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", buildDir+"/", "./cmd/cortex", "./cmd/cortexd")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		buildErr = os.Symlink("cortex", filepath.Join(buildDir, "cortex-ops"))
	})
	if buildErr != nil {
		t.Fatalf("build binaries: %v", buildErr)
	}
	return buildDir
}

// Main runs a test binary's tests and then removes the binaries Binaries
// built; call it from TestMain: os.Exit(daemontest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	return code
}

// Daemon is one cortexd under a temporary root.
type Daemon struct {
	t      testing.TB
	Root   string
	Bin    string
	cmd    *exec.Cmd
	exited chan struct{}
	// adopted is the pid of a daemon this Daemon did not start: one the
	// CLI autostarted, or put in place by cortex-ops update. Stop and
	// cleanup stop it by pid.
	adopted int
	Client  *api.Client
	Log     string
}

// Options configure Start.
type Options struct {
	// Config is written to etc/cortex/config.yaml ("" = defaults with
	// fast restarts for tests).
	Config string
	// NoStart only prepares the root (for autostart tests).
	NoStart bool
}

// DefaultConfig is what tests run with unless they say otherwise.
const DefaultConfig = `version: "1"
supervisor:
  kill_grace: 5s
  backoff_initial: 100ms
  backoff_max: 1s
`

// Start starts cortexd in a fresh root and registers cleanup: every
// project is removed, the daemon stopped, and leaks are checked.
func Start(t testing.TB, opts Options) *Daemon {
	t.Helper()
	kerneltest.RequireRoot(t)
	bin := Binaries(t)
	root, err := os.MkdirTemp("", "cortex-e2e-root-")
	if err != nil {
		t.Fatal(err)
	}
	cfg := opts.Config
	if cfg == "" {
		cfg = DefaultConfig
	}
	if err := os.MkdirAll(filepath.Join(root, "etc", "cortex"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "cortex", "config.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &Daemon{t: t, Root: root, Bin: bin, Log: filepath.Join(root, "cortexd-test.log")}
	d.Client = api.NewClient(filepath.Join(root, "run", "cortex", "cortexd.sock"))
	t.Cleanup(func() { d.cleanup() })
	if !opts.NoStart {
		d.StartDaemon()
	}
	return d
}

// Env is the environment CLI commands and daemons of this root get (no
// client config: the tests never read the user's contexts).
func (d *Daemon) Env() []string {
	env := []string{"CORTEX_ROOT=" + d.Root, "CORTEX_DAEMON=" + filepath.Join(d.Bin, "cortexd"), "CORTEX_CONFIG=" + filepath.Join(d.Root, "no-client-config.yaml")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CORTEX_") {
			env = append(env, kv)
		}
	}
	return env
}

// StartDaemon starts (or restarts) the cortexd process and waits for it.
func (d *Daemon) StartDaemon() {
	d.t.Helper()
	logf, err := os.OpenFile(d.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(d.Bin, "cortexd"), "--log-level", "debug")
	cmd.Env = d.Env()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.cmd = cmd
	d.exited = make(chan struct{})
	go func() { _ = cmd.Wait(); close(d.exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := d.Client.Ping(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-d.exited:
			d.t.Fatalf("cortexd exited at start; log:\n%s", d.LogText())
		case <-time.After(20 * time.Millisecond):
		}
	}
	d.t.Fatalf("cortexd did not answer; log:\n%s", d.LogText())
}

// T is the test the daemon belongs to.
func (d *Daemon) T() testing.TB { return d.t }

// APIAddr is the address the daemon's TCP listener bound (api.listen),
// from run/cortex/api.addr.
func (d *Daemon) APIAddr() string {
	d.t.Helper()
	b, err := os.ReadFile(filepath.Join(d.Root, "run", "cortex", "api.addr"))
	if err != nil {
		d.t.Fatalf("the daemon has no TCP listener (set api.listen): %v", err)
	}
	return strings.TrimSpace(string(b))
}

// Pid is the running daemon's pid.
func (d *Daemon) Pid() int {
	if d.cmd == nil || d.cmd.Process == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// Kill9 kills the daemon with SIGKILL and waits for it to be gone.
func (d *Daemon) Kill9() {
	d.t.Helper()
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
	d.cmd = nil
}

// Adopt takes over the daemon that answers on the root's socket when it
// is not the one StartDaemon started (the CLI autostarted it, or
// cortex-ops update replaced it): Stop and cleanup then stop it by pid.
// It reports whether a daemon answers.
func (d *Daemon) Adopt() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	v, err := d.Client.Version(ctx)
	if err != nil {
		return false
	}
	if d.cmd != nil && d.cmd.Process != nil && d.cmd.Process.Pid == v.Pid {
		return true
	}
	d.adopted = v.Pid
	return true
}

// gone reports whether pid has exited (a zombie counts).
func gone(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] == 'Z'
}

// Stop stops the daemon with SIGTERM (agents keep running).
func (d *Daemon) Stop() {
	if d.adopted != 0 {
		_ = syscall.Kill(d.adopted, syscall.SIGTERM)
		deadline := time.Now().Add(15 * time.Second)
		for !gone(d.adopted) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if !gone(d.adopted) {
			_ = syscall.Kill(d.adopted, syscall.SIGKILL)
		}
		d.adopted = 0
	}
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
	d.cmd = nil
}

// LogText returns the daemon's log.
func (d *Daemon) LogText() string {
	b, _ := os.ReadFile(d.Log)
	a, _ := os.ReadFile(filepath.Join(d.Root, "var", "log", "cortex", "cortexd.log"))
	return string(b) + string(a)
}

// Result is a finished CLI command.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// CLI runs cortex with args in dir ("" = a temp dir) and waits.
func (d *Daemon) CLI(dir string, args ...string) Result {
	d.t.Helper()
	return d.CLIContext(context.Background(), dir, args...)
}

// Ops runs cortex-ops (the same binary under its other name) with args
// and waits.
func (d *Daemon) Ops(args ...string) Result {
	d.t.Helper()
	return d.run(context.Background(), "cortex-ops", nil, "", args...)
}

// CLIContext is CLI with a context (cancel to interrupt).
func (d *Daemon) CLIContext(ctx context.Context, dir string, args ...string) Result {
	d.t.Helper()
	return d.CLIEnv(ctx, nil, dir, args...)
}

// CLIEnv is CLI with extra environment variables (KEY=VALUE), which
// override the root's: CORTEX_HOST, CORTEX_API_KEY, CORTEX_CA, ... for a
// remote client.
func (d *Daemon) CLIEnv(ctx context.Context, extra []string, dir string, args ...string) Result {
	d.t.Helper()
	return d.run(ctx, "cortex", extra, dir, args...)
}

func (d *Daemon) run(ctx context.Context, prog string, extra []string, dir string, args ...string) Result {
	d.t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(d.Bin, prog), args...)
	cmd.Env = append(d.Env(), extra...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			d.t.Fatalf("%s %v: %v", prog, args, err)
		}
	}
	return Result{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

// MustCLI runs cortex and fails the test on a non-zero exit.
func (d *Daemon) MustCLI(dir string, args ...string) string {
	d.t.Helper()
	r := d.CLI(dir, args...)
	if r.Code != 0 {
		d.t.Fatalf("cortex %s: exit %d\nstdout:\n%s\nstderr:\n%s\ndaemon log:\n%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr, tail(d.LogText(), 40))
	}
	return r.Stdout
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Agent returns an agent's status (all states).
func (d *Daemon) Agent(project, agent string) (api.AgentStatus, bool) {
	d.t.Helper()
	list, err := d.Client.Agents(context.Background(), project, true)
	if err != nil {
		d.t.Fatalf("list agents: %v", err)
	}
	for _, a := range list {
		if a.Agent == agent {
			return a, true
		}
	}
	return api.AgentStatus{}, false
}

// WaitAgent polls until cond holds for project/agent or timeout passes.
func (d *Daemon) WaitAgent(project, agent string, timeout time.Duration, what string, cond func(api.AgentStatus) bool) api.AgentStatus {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	var last api.AgentStatus
	for time.Now().Before(deadline) {
		if a, ok := d.Agent(project, agent); ok {
			last = a
			if cond(a) {
				return a
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.t.Fatalf("%s/%s: timed out after %s waiting for %s; last: %+v\ndaemon log:\n%s", project, agent, timeout, what, last, tail(d.LogText(), 40))
	return last
}

// Final waits for an agent to end for good.
func (d *Daemon) Final(project, agent string, timeout time.Duration) api.AgentStatus {
	d.t.Helper()
	return d.WaitAgent(project, agent, timeout, "a final state", func(a api.AgentStatus) bool {
		return !a.State.Active() && !a.RestartPending
	})
}

// CgroupParent is the daemon's cgroup parent name (as the daemon derives it).
func (d *Daemon) CgroupParent() string {
	h := sha256.Sum256([]byte(filepath.Clean(d.Root)))
	return "cortex-" + hex.EncodeToString(h[:6])
}

// CgroupDirs lists the agent cgroup directories left in any v1 hierarchy
// or the v2 tree under the daemon's parent.
func (d *Daemon) CgroupDirs() []string {
	var out []string
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/" + d.CgroupParent())
	if fi, err := os.Stat("/sys/fs/cgroup/" + d.CgroupParent()); err == nil && fi.IsDir() {
		roots = append(roots, "/sys/fs/cgroup/"+d.CgroupParent())
	}
	for _, r := range roots {
		_ = filepath.WalkDir(r, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() && p != r {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

// SandboxProcesses lists live sandbox inits that belong to this root
// (their control files live under it).
func (d *Daemon) SandboxProcesses() []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if !bytes.HasPrefix(cmdline, []byte("cortex-init")) {
			continue
		}
		env, _ := os.ReadFile("/proc/" + e.Name() + "/environ")
		cwd, _ := os.Readlink("/proc/" + e.Name() + "/cwd")
		_ = cwd
		if bytes.Contains(env, []byte("CORTEX_SANDBOX_ID=")) && d.owns(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// owns reports whether sandbox init pid is one of this daemon's: its
// exit file descriptor points under the root.
func (d *Daemon) owns(pid int) bool {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, f := range fds {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, f.Name()))
		if strings.HasPrefix(l, d.Root) {
			return true
		}
	}
	// A cgroup path under our parent also identifies it.
	cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	return bytes.Contains(cg, []byte(d.CgroupParent()))
}

// HostMounts lists mounts in the host's mount namespace under the root
// (there must be none: sandboxes mount only in their own namespaces).
func (d *Daemon) HostMounts() []string {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && strings.HasPrefix(f[4], d.Root) {
			out = append(out, f[4])
		}
	}
	return out
}

// CheckNoLeaks fails the test if the root left cgroups, sandbox
// processes or host mounts behind.
func (d *Daemon) CheckNoLeaks() {
	d.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cg, procs, mounts := d.CgroupDirs(), d.SandboxProcesses(), d.HostMounts()
		if len(cg) == 0 && len(procs) == 0 && len(mounts) == 0 {
			return
		}
		if time.Now().After(deadline) {
			d.t.Errorf("leaks: cgroups %v, sandbox processes %v, host mounts %v", cg, procs, mounts)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *Daemon) cleanup() {
	if d.cmd != nil {
		select {
		case <-d.exited:
			d.cmd = nil // replaced (cortex-ops update) or gone
		default:
		}
	}
	if d.cmd == nil && !d.Adopt() {
		d.StartDaemonQuiet()
	}
	if d.cmd != nil || d.adopted != 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		ps, _ := d.Client.Projects(ctx)
		for _, p := range ps {
			_ = d.Client.Remove(ctx, p.Name, true)
		}
		cancel()
		d.Stop()
		d.CheckNoLeaks()
		// With every project removed, the daemon removes its parent.
		if left := d.cgroupParentDirs(); len(left) > 0 {
			d.t.Errorf("the daemon stopped with no agents left but kept its cgroup parent: %v", left)
		}
	}
	d.CheckNoLeaks()
	d.removeCgroupParent()
	if d.t.Failed() {
		d.t.Logf("daemon log (%s):\n%s", d.Root, tail(d.LogText(), 80))
		return
	}
	_ = os.RemoveAll(d.Root)
}

// cgroupParentDirs lists the root's cgroup parent directories that exist.
func (d *Daemon) cgroupParentDirs() []string {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + d.CgroupParent())
	if fi, err := os.Stat("/sys/fs/cgroup/" + d.CgroupParent()); err == nil && fi.IsDir() {
		dirs = append(dirs, "/sys/fs/cgroup/"+d.CgroupParent())
	}
	return dirs
}

// removeCgroupParent removes whatever is left of the root's cgroup parent
// (after a failed test): a test root is gone for good.
func (d *Daemon) removeCgroupParent() {
	for _, dir := range d.cgroupParentDirs() {
		var sub []string
		_ = filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				sub = append(sub, p)
			}
			return nil
		})
		for i := len(sub) - 1; i >= 0; i-- {
			_ = os.Remove(sub[i])
		}
	}
}

// StartDaemonQuiet starts the daemon if the root has state, for cleanup.
func (d *Daemon) StartDaemonQuiet() {
	if _, err := os.Stat(filepath.Join(d.Root, "var", "lib", "cortex", "state.db")); err != nil {
		return
	}
	d.StartDaemon()
}

// Project writes files (path -> content) into a new project directory.
//
// A cortex.yaml's "runtime: python3.11" and "runtime: nodejs20" lines name
// the runtimes this host has instead (runtimestest.HostManifest).
func Project(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		if filepath.Base(p) == "cortex.yaml" {
			c = string(runtimestest.HostManifest(t, []byte(c)))
		}
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// JSON decodes s into v or fails.
func JSON(t testing.TB, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
}
