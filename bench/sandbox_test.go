//go:build linux

package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/cgroups"
	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/daemon/daemontest"
	"github.com/cortexrt/cortex/internal/kerneltest"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/runtimes"
	"github.com/cortexrt/cortex/internal/runtimes/runtimestest"
	"github.com/cortexrt/cortex/internal/sandbox"
	"github.com/cortexrt/cortex/internal/seccomp"
	"github.com/cortexrt/cortex/internal/store"
	"github.com/cortexrt/cortex/internal/supervisor"
	"golang.org/x/sys/unix"
)

const (
	bwrapPath = "/usr/bin/bwrap"
	// sandboxUID is the unprivileged uid both sandboxes run the program
	// as; far above the daemon's UIDBase allocations of small test swarms.
	sandboxUID = 1609999
	// minSandboxRuns is the fewest starts per series a run reports on.
	minSandboxRuns = 50
	// sandboxTimeout bounds one start and exit on a loaded machine.
	sandboxTimeout = 2 * time.Minute
)

// BenchmarkSandboxStart measures the time from "start requested" to the
// first line of a tiny Python program (its first statement records
// time.time_ns()), for the same program started:
//
//   - plain-c: python3 -c <program> (the host's Python), as a reference;
//   - plain:   the exact argv and environment Cortex runs (the bootstrap
//     shim importing agent:main), without any sandbox;
//   - bwrap:   bubblewrap with namespaces, mounts and the seccomp filter
//     comparable to Cortex's (see buildBwrapArgs for what is and is not);
//   - cortex:  what the daemon does for an agent with every wall: create
//     its cgroup, supervisor.BuildSpec, sandbox.Start with the init placed
//     in the cgroup in Prepare (Confine, Landlock, seccomp on).
//
// The four are interleaved (rotating order) over at least 50 iterations.
// Reported: p50/p99 of each (p99 of 50 is the second slowest), the ratios
// cortex/plain and cortex/bwrap, the CPU time each start cost its
// processes (load-independent, unlike the wall times), the cost of
// starting the init binary alone, and a breakdown of the cortex start
// from timestamps taken around each daemon-side call, the init's "step X
// took Y" debug logs and the init's CPU time when the program starts.
func BenchmarkSandboxStart(b *testing.B) {
	kerneltest.RequireRoot(b)
	kerneltest.RequireFile(b, bwrapPath)
	runtimestest.Python(b)
	kerneltest.Require(b, "seccomp", seccomp.Probe)
	kerneltest.Require(b, "landlock", func() error {
		if sandbox.LandlockABI() < 1 {
			return fmt.Errorf("the kernel has no Landlock")
		}
		return nil
	})
	sb := newSandboxBench(b)

	series := []struct {
		name string
		run  func() (wall, cpu float64)
	}{
		{"plain-c", sb.runPlainC},
		{"plain", sb.runPlain},
		{"bwrap", sb.runBwrap},
		{"cortex", sb.runCortex},
	}
	// One untimed round: page cache, the interpreter's and the init's
	// binaries, the cgroup parent.
	for _, s := range series {
		s.run()
	}
	sb.breakdown = map[string][]float64{}

	runs := max(b.N, minSandboxRuns)
	got, cpu := map[string][]float64{}, map[string][]float64{}
	b.ResetTimer()
	for i := 0; i < runs; i++ {
		for j := range series {
			s := series[(i+j)%len(series)]
			wall, c := s.run()
			got[s.name] = append(got[s.name], wall)
			cpu[s.name] = append(cpu[s.name], c)
		}
	}
	b.StopTimer()
	// What starting the init binary alone costs (Go runtime, package
	// inits, page faults of cortexd): `cortexd init` with no control
	// socket exits at once.
	var bareWall, bareCPU []float64
	for i := 0; i < runs; i++ {
		w, c := sb.runInitBare()
		bareWall, bareCPU = append(bareWall, w), append(bareCPU, c)
	}

	p := func(name string, q float64) float64 { return percentile(got[name], q) }
	var cpus []string
	for _, s := range series {
		b.ReportMetric(p(s.name, .5), s.name+"-p50-ms")
		b.ReportMetric(p(s.name, .99), s.name+"-p99-ms")
		b.ReportMetric(percentile(cpu[s.name], .5), s.name+"-cpu-p50-ms")
		cpus = append(cpus, fmt.Sprintf("%s %.1f", s.name, percentile(cpu[s.name], .5)))
	}
	b.ReportMetric(p("cortex", .5)/p("plain", .5), "cortex/plain-p50")
	b.ReportMetric(p("cortex", .99)/p("plain", .99), "cortex/plain-p99")
	b.ReportMetric(p("cortex", .5)/p("bwrap", .5), "cortex/bwrap-p50")
	b.ReportMetric(p("cortex", .99)/p("bwrap", .99), "cortex/bwrap-p99")
	b.ReportMetric(p("bwrap", .5)/p("plain", .5), "bwrap/plain-p50")
	b.Logf("runs=%d | plain-c p50 %.1f p99 %.1f ms | plain p50 %.1f p99 %.1f ms | bwrap p50 %.1f p99 %.1f ms | cortex p50 %.1f p99 %.1f ms | cortex/plain p50 %.2fx p99 %.2fx | cortex/bwrap p50 %.2fx p99 %.2fx",
		runs, p("plain-c", .5), p("plain-c", .99), p("plain", .5), p("plain", .99), p("bwrap", .5), p("bwrap", .99),
		p("cortex", .5), p("cortex", .99),
		p("cortex", .5)/p("plain", .5), p("cortex", .99)/p("plain", .99),
		p("cortex", .5)/p("bwrap", .5), p("cortex", .99)/p("bwrap", .99))

	b.ReportMetric(percentile(bareWall, .5), "init-bare-p50-ms")
	b.ReportMetric(percentile(bareCPU, .5), "init-bare-cpu-p50-ms")
	b.Logf("CPU time of the started processes (user+sys of everything the start forked, reaped), p50 ms: %s", strings.Join(cpus, " | "))
	b.Logf("cortexd init alone (exec to exit, no spec): wall p50 %.1f p99 %.1f ms, CPU p50 %.1f ms",
		percentile(bareWall, .5), percentile(bareWall, .99), percentile(bareCPU, .5))

	var parts []string
	for _, name := range sb.breakdownOrder() {
		v := sb.breakdown[name]
		if len(v) == 0 {
			continue
		}
		b.ReportMetric(percentile(v, .5), "cortex-"+name+"-p50-ms")
		parts = append(parts, fmt.Sprintf("%s %.2f/%.2f", name, percentile(v, .5), percentile(v, .99)))
	}
	b.Logf("cortex breakdown, p50/p99 ms (each column on its own, so they need not add up to the total): %s", strings.Join(parts, " | "))
	if len(sb.initWarnings) > 0 {
		b.Logf("init logged: %s", strings.Join(sb.initWarnings, "; "))
	}
}

// sandboxBench holds what every start shares.
type sandboxBench struct {
	b        *testing.B
	dir      string // 0755, so the unprivileged bwrap can reach the binds
	appDir   string // the agent's code, /app inside the sandboxes
	shimDir  string // host copy of the runtime shims
	initPath string // cortexd, re-exec'd as the sandbox init
	seccomp  string // the raw BPF of seccomp.Default(), for bwrap --seccomp
	opts     supervisor.Options
	in       supervisor.SpecInput
	cgm      cgroups.Manager
	cgParent string
	limits   cgroups.Limits
	logs     *stepLog

	spec      sandbox.Spec // a BuildSpec result, for plain and bwrap
	bwrapArgs []string     // options, without "--" and the command

	breakdown    map[string][]float64
	stepNames    []string
	initWarnings []string
}

func newSandboxBench(b *testing.B) *sandboxBench {
	sb := &sandboxBench{b: b, breakdown: map[string][]float64{}, logs: &stepLog{}}
	dir, err := os.MkdirTemp("", "cortex-bench-sandbox-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			b.Errorf("remove %s: %v", dir, err)
		}
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	sb.dir = dir
	// Only cortexd is needed, in this temp dir so cleanup removes it
	// (daemontest.Binaries builds both and keeps them for the binary's life).
	root, err := daemontest.ModuleRoot()
	if err != nil {
		b.Fatal(err)
	}
	sb.initPath = filepath.Join(dir, "cortexd")
	build := exec.Command("go", "build", "-o", sb.initPath, "./cmd/cortexd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build ./cmd/cortexd: %v\n%s", err, out)
	}
	sb.appDir = filepath.Join(dir, "app")
	for _, d := range []string{sb.appDir, filepath.Join(dir, "run"), filepath.Join(dir, "etc")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(sb.appDir, "agent.py"), []byte(firstLine), 0o644); err != nil {
		b.Fatal(err)
	}
	shareDir := filepath.Join(dir, "share")
	if sb.shimDir, err = runtimes.Install(shareDir); err != nil {
		b.Fatal(err)
	}

	// The agent as the daemon would resolve it with its default config.
	mem, err := manifest.ParseQuantity("512Mi")
	if err != nil {
		b.Fatal(err)
	}
	agent := manifest.ResolvedAgent{
		Project: "bench", Name: "sandbox", Runtime: runtimestest.Python(b).Runtime, Entrypoint: "agent:main",
		Limits:        manifest.Limits{CPU: 1, Memory: mem, Pids: 512},
		RestartPolicy: manifest.RestartNo,
	}
	sb.limits = cgroups.Limits{CPU: agent.Limits.CPU, Memory: int64(agent.Limits.Memory), Pids: agent.Limits.Pids}
	sb.opts = supervisor.Options{
		Runtimes: runtimes.NewRegistry(nil, config.FromEnv().PyenvRoot),
		ShareDir: shareDir,
		RunDir:   filepath.Join(dir, "run"),
		DataDir:  filepath.Join(dir, "data"),
		InitPath: sb.initPath,
		Sandbox: supervisor.SandboxOptions{
			Confine:  true,
			Seccomp:  true,
			Landlock: true,
			UIDBase:  sandboxUID,
			TmpSize:  64 << 20,
		},
	}
	sb.in = supervisor.SpecInput{
		Project: store.Project{Name: "bench", BundleDir: sb.appDir},
		Agent:   agent,
		UID:     sandboxUID,
		RunDir:  filepath.Join(dir, "run", "bench", "sandbox"),
	}
	if sb.spec, err = supervisor.BuildSpec(sb.opts, sb.in); err != nil {
		b.Fatal(err)
	}
	if sb.spec.Confine == nil || !sb.spec.Confine.Seccomp || !sb.spec.Confine.Landlock || sb.spec.Rootfs == nil {
		b.Fatalf("BuildSpec did not confine: %+v", sb.spec)
	}

	sb.cgParent = fmt.Sprintf("cortex-bench-%d", os.Getpid())
	if sb.cgm, err = cgroups.New(sb.cgParent, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(sb.removeCgroupParent)

	// bwrap leaves its pid 1 to die after it exits: adopt and reap it
	// (reapSandboxInit).
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	})

	sb.seccomp = filepath.Join(dir, "seccomp.bpf")
	if err := writeSeccompBPF(sb.seccomp); err != nil {
		b.Fatal(err)
	}
	if sb.bwrapArgs, err = sb.buildBwrapArgs(); err != nil {
		b.Fatal(err)
	}
	sb.checkBwrap()
	return sb
}

// writeSeccompBPF writes Cortex's default filter as the raw array of
// struct sock_filter bwrap --seccomp reads.
func writeSeccompBPF(path string) error {
	f, err := seccomp.Default().Build()
	if err != nil {
		return err
	}
	defer f.Release()
	prog, err := f.BPF()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for _, ins := range prog {
		var raw [8]byte
		binary.NativeEndian.PutUint16(raw[0:], ins.Op)
		raw[2], raw[3] = ins.Jt, ins.Jf
		binary.NativeEndian.PutUint32(raw[4:], ins.K)
		buf.Write(raw[:])
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// buildBwrapArgs mirrors the cortex spec in bwrap options (the command
// follows "--"), so the two sandboxes see the same tree.
//
// Comparable: the same program, argv, environment, working directory
// and uid; new pid, net, ipc, uts and cgroup namespaces; a tmpfs root
// (bwrap's default) holding read-only binds of exactly the spec's binds
// (symlinks recreated as symlinks), the spec's /etc files, a new /proc,
// a minimal /dev, a size-capped /tmp, / and /dev remounted read-only;
// no_new_privs, no capabilities, a new session, die-with-parent, and
// Cortex's own seccomp filter (the same BPF).
//
// Not comparable: bwrap is started as the unprivileged uid itself (as
// root it refuses --uid without a user namespace mapped to host root),
// so it also creates a user namespace, which Cortex does not; bwrap
// copies no files into the root (the /etc files are read-only binds of
// files written once) and masks none of /proc (Cortex masks runc's list);
// bwrap has no Landlock, no cgroup and no RLIMIT_NOFILE; and it does not
// wait for a daemon to place it in a cgroup before it runs.
func (sb *sandboxBench) buildBwrapArgs() ([]string, error) {
	s := sb.spec
	args := []string{
		"--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup",
		"--die-with-parent", "--new-session", "--cap-drop", "ALL",
		"--hostname", s.Hostname,
		"--seccomp", "3", "--info-fd", "4",
	}
	for _, bd := range s.Rootfs.Binds {
		fi, err := os.Lstat(bd.Source)
		switch {
		case err != nil && bd.Optional && os.IsNotExist(err):
			continue
		case err != nil:
			return nil, err
		case fi.Mode()&os.ModeSymlink != 0:
			link, err := os.Readlink(bd.Source)
			if err != nil {
				return nil, err
			}
			args = append(args, "--symlink", link, bd.Target)
		case bd.Writable:
			args = append(args, "--bind", bd.Source, bd.Target)
		default:
			args = append(args, "--ro-bind", bd.Source, bd.Target)
		}
	}
	args = append(args, "--proc", "/proc", "--dev", "/dev",
		"--size", strconv.FormatInt(sb.opts.Sandbox.TmpSize, 10), "--tmpfs", "/tmp", "--chmod", "1777", "/tmp")
	for i, f := range s.Rootfs.Files {
		host := filepath.Join(sb.dir, "etc", strconv.Itoa(i)+"-"+filepath.Base(f.Path))
		if err := os.WriteFile(host, f.Data, 0o644); err != nil {
			return nil, err
		}
		args = append(args, "--ro-bind", host, f.Path)
	}
	args = append(args, "--remount-ro", "/", "--remount-ro", "/dev", "--chdir", s.Dir, "--clearenv")
	for _, kv := range s.Env {
		k, v, _ := strings.Cut(kv, "=")
		args = append(args, "--setenv", k, v)
	}
	return args, nil
}

// runPlainC starts the interpreter -c with the program.
func (sb *sandboxBench) runPlainC() (wall, cpu float64) {
	cmd := exec.Command(sb.spec.Argv[0], "-c", firstLine+"\nmain()\n")
	return sb.runCmd("plain-c", cmd, nil)
}

// runPlain starts the argv Cortex runs, on the host, as root.
func (sb *sandboxBench) runPlain() (wall, cpu float64) {
	argv := append([]string(nil), sb.spec.Argv...)
	for i, a := range argv {
		if strings.HasPrefix(a, supervisor.SandboxShare+"/shims/") {
			argv[i] = filepath.Join(sb.shimDir, strings.TrimPrefix(a, supervisor.SandboxShare+"/shims/"))
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = sb.appDir
	cmd.Env = sb.spec.Env
	return sb.runCmd("plain", cmd, nil)
}

// runBwrap starts the argv Cortex runs under bwrap, as the unprivileged uid.
func (sb *sandboxBench) runBwrap() (wall, cpu float64) {
	cmd, reap, release := sb.bwrapCmd(sb.spec.Argv)
	defer release()
	return sb.runCmd("bwrap", cmd, reap)
}

// bwrapCmd is bwrap running argv in the bench's sandbox as the
// unprivileged uid. Call reap once it has exited successfully, release
// when done.
func (sb *sandboxBench) bwrapCmd(argv []string) (cmd *exec.Cmd, reap, release func()) {
	cmd = exec.Command(bwrapPath, append(append(append([]string(nil), sb.bwrapArgs...), "--"), argv...)...)
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: sandboxUID, Gid: sandboxUID, Groups: []uint32{}}}
	// bwrap reads the filter from fd 3 to its end: a fresh open each time.
	f, err := os.Open(sb.seccomp)
	if err != nil {
		sb.b.Fatal(err)
	}
	// --info-fd 4 tells the host pid of bwrap's pid 1.
	infoR, infoW, err := os.Pipe()
	if err != nil {
		f.Close()
		sb.b.Fatal(err)
	}
	cmd.ExtraFiles = []*os.File{f, infoW}
	reap = func() {
		infoW.Close()
		var info struct {
			ChildPid int `json:"child-pid"`
		}
		if err := json.NewDecoder(infoR).Decode(&info); err != nil || info.ChildPid <= 0 {
			sb.b.Fatalf("bwrap --info-fd: %v (child-pid %d)", err, info.ChildPid)
		}
		reapSandboxInit(info.ChildPid)
	}
	release = func() {
		f.Close()
		infoR.Close()
		infoW.Close()
	}
	return cmd, reap, release
}

// checkBwrap makes sure the bwrap sandbox is what the comparison claims:
// the unprivileged uid, no capabilities, no_new_privs, a seccomp filter,
// and none of the host's /etc beyond the binds.
func (sb *sandboxBench) checkBwrap() {
	cmd, reap, release := sb.bwrapCmd([]string{sb.spec.Argv[0], "-c",
		"import os\nprint(open('/proc/self/status').read())\nprint('shadow:', os.path.exists('/etc/shadow'))\nprint('cwd:', os.getcwd())"})
	defer release()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		sb.b.Fatalf("bwrap: %v\n%s", err, stderr.Bytes())
	}
	reap()
	got := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			got[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	uid := strconv.Itoa(sandboxUID)
	want := map[string]string{
		"Uid":        strings.Join([]string{uid, uid, uid, uid}, " "),
		"CapEff":     "0000000000000000",
		"CapBnd":     "0000000000000000",
		"NoNewPrivs": "1",
		"Seccomp":    "2",
		"shadow":     "False",
		"cwd":        sb.spec.Dir,
	}
	for k, v := range want {
		if got[k] != v {
			sb.b.Fatalf("bwrap sandbox: %s is %q, want %q\n%s", k, got[k], v, out)
		}
	}
}

// runInitBare runs the init binary without a control socket: it starts,
// fails to read a spec and exits 125. Returned: ms from start to exit and
// its CPU ms.
func (sb *sandboxBench) runInitBare() (wall, cpu float64) {
	cmd := exec.Command(sb.initPath, sandbox.InitArg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	c0 := childrenCPU(sb.b)
	t0 := time.Now()
	err := cmd.Run()
	wall = ms(time.Since(t0))
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 125 {
		sb.b.Fatalf("cortexd init without a control socket: %v (want exit 125)\n%s", err, stderr.Bytes())
	}
	return wall, ms(childrenCPU(sb.b) - c0)
}

// runCmd starts cmd with t0 taken right before Start and returns the ms
// from t0 to the program's first line, and the CPU ms cmd and its
// descendants used.
func (sb *sandboxBench) runCmd(name string, cmd *exec.Cmd, after func()) (wall, cpu float64) {
	sb.b.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = sandboxTimeout
	c0 := childrenCPU(sb.b)
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		sb.b.Fatalf("%s: %v", name, err)
	}
	timer := time.AfterFunc(sandboxTimeout, func() { _ = cmd.Process.Kill() })
	err := cmd.Wait()
	timer.Stop()
	if err != nil {
		sb.b.Fatalf("%s: %v\nstdout: %s\nstderr: %s", name, err, stdout.Bytes(), stderr.Bytes())
	}
	if after != nil {
		after()
	}
	return msSince(sb.b, t0, stdout.Bytes()), ms(childrenCPU(sb.b) - c0)
}

// reapSandboxInit reaps bwrap's pid 1 (pid), which bwrap's outer
// process leaves behind when it exits as soon as it learns the program's
// status: this process, a subreaper, inherits it. Reaping it counts its
// CPU time (and the program's, which it reaped) in childrenCPU. ECHILD
// means bwrap reaped it itself.
func reapSandboxInit(pid int) {
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err != unix.EINTR {
			return
		}
	}
}

// threadsCPU is the CPU time pid's threads have used so far
// (/proc/pid/task/*/schedstat, in ns).
func threadsCPU(pid int) (time.Duration, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var sum time.Duration
	for _, t := range tasks {
		data, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat"))
		if err != nil {
			continue // the thread ended
		}
		f := strings.Fields(string(data))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s/%s/schedstat: %w", dir, t.Name(), err)
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}

// childrenCPU is the user+sys time of every reaped child of this process
// (and, recursively, of what they reaped): the CPU a start cost its
// processes, whatever the machine's load.
func childrenCPU(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_CHILDREN, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// runCortex does what the supervisor's start does for one run (minus the
// state store and the log collector): cgroup, spec, sandbox.Start with the
// init placed in the cgroup in Prepare; then it waits for the program to
// end and tears the cgroup down.
func (sb *sandboxBench) runCortex() (wall, cpu float64) {
	b := sb.b
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sandboxTimeout)
	defer cancel()
	rOut, wOut, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	defer rOut.Close()
	defer wOut.Close()
	rErr, wErr, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	defer rErr.Close()
	defer wErr.Close()
	sb.logs.reset()

	const group = "bench/sandbox"
	var tPrep, tPrepDone time.Time
	c0 := childrenCPU(b)
	t0 := time.Now()
	if old, err := sb.cgm.Load(group); err == nil {
		_ = old.Delete()
	}
	cg, err := sb.cgm.Create(group, sb.limits)
	if err != nil {
		b.Fatalf("create cgroup: %v", err)
	}
	defer func() {
		if err := cg.Delete(); err != nil {
			b.Errorf("delete cgroup: %v", err)
		}
	}()
	tCg := time.Now()
	spec, err := supervisor.BuildSpec(sb.opts, sb.in)
	if err != nil {
		b.Fatal(err)
	}
	tSpec := time.Now()
	proc, err := sandbox.Start(ctx, spec, sandbox.StartOptions{
		InitPath: sb.initPath,
		Stdout:   wOut,
		Stderr:   wErr,
		Logger:   slog.New(sb.logs),
		Prepare: func(pid int) error {
			tPrep = time.Now()
			err := cg.AddProc(pid)
			tPrepDone = time.Now()
			return err
		},
	})
	tStarted := time.Now()
	var initCPU time.Duration
	if err == nil {
		// The init is alive while the program runs: this is what it
		// used to build the sandbox and start the program.
		initCPU, _ = threadsCPU(proc.Pid)
	}
	// Only the sandbox holds the write ends now: EOF means it has ended.
	wOut.Close()
	wErr.Close()
	stderr := make(chan []byte, 1)
	go func() {
		data, _ := io.ReadAll(rErr)
		stderr <- data
	}()
	if err != nil {
		b.Fatalf("sandbox.Start: %v\ninit stderr: %s", err, <-stderr)
	}
	defer func() {
		// Only on a failure below: the sandbox has normally ended.
		_ = proc.Signal(unix.SIGKILL)
		_, _ = proc.Wait(context.Background())
	}()
	out, err := io.ReadAll(rOut)
	if err != nil {
		b.Fatal(err)
	}
	st, err := proc.Wait(ctx)
	errOut := <-stderr
	if err != nil || st.Code != 0 {
		b.Fatalf("sandbox ended with %+v (%v)\nstdout: %s\nstderr: %s", st, err, out, errOut)
	}
	// The init was reaped by proc.Wait: its CPU, and the agent's (which
	// the init reaped), are in childrenCPU now.
	cpu = ms(childrenCPU(b) - c0)
	wall = msSince(b, t0, out)
	first := t0.Add(time.Duration(wall * float64(time.Millisecond)))

	add := func(name string, d time.Duration) { sb.breakdown[name] = append(sb.breakdown[name], ms(d)) }
	add("cgroup", tCg.Sub(t0))
	add("spec", tSpec.Sub(tCg))
	add("init-exec", tPrep.Sub(tSpec))
	add("prepare", tPrepDone.Sub(tPrep))
	steps, warnings := sb.logs.take()
	sb.initWarnings = append(sb.initWarnings, warnings...)
	var sum time.Duration
	for _, s := range steps {
		sum += s.took
		add("step-"+s.name, s.took)
		sb.noteStep(s.name)
	}
	add("init-other", tStarted.Sub(tPrepDone)-sum)
	if len(steps) > 0 {
		// Arrival times of the step logs include the relay's latency:
		// these two split init-other only approximately.
		add("init-boot", steps[0].at.Add(-steps[0].took).Sub(tPrepDone))
		add("agent-exec", tStarted.Sub(steps[len(steps)-1].at))
	}
	add("interpreter", first.Sub(tStarted))
	if initCPU > 0 {
		add("cpu-init", initCPU)
		// The rest: the program, the init supervising it, and the
		// sandbox's teardown (the mount namespace dies with the init).
		sb.breakdown["cpu-rest"] = append(sb.breakdown["cpu-rest"], cpu-ms(initCPU))
	}
	return wall, cpu
}

func (sb *sandboxBench) noteStep(name string) {
	for _, n := range sb.stepNames {
		if n == name {
			return
		}
	}
	sb.stepNames = append(sb.stepNames, name)
}

// breakdownOrder lists the breakdown in the order a start goes through.
func (sb *sandboxBench) breakdownOrder() []string {
	order := []string{"cgroup", "spec", "init-exec", "prepare", "init-other", "init-boot"}
	for _, n := range sb.stepNames {
		order = append(order, "step-"+n)
	}
	return append(order, "agent-exec", "interpreter", "cpu-init", "cpu-rest")
}

// removeCgroupParent removes the bench's cgroup parent from every
// hierarchy (the Manager never removes its own parent).
func (sb *sandboxBench) removeCgroupParent() {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		sb.b.Error(err)
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, x := range fields {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(fields) || len(fields) < 5 {
			continue
		}
		if fs := fields[sep+1]; fs != "cgroup" && fs != "cgroup2" {
			continue
		}
		p := filepath.Join(fields[4], sb.cgParent)
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			sb.b.Errorf("remove cgroup parent %s: %v", p, err)
		}
	}
}

// stepLog is the slog handler given to sandbox.Start: it keeps the
// init's "step X took Y" debug lines, with when each arrived, and any
// warning or error the init logged.
type stepLog struct {
	mu       sync.Mutex
	steps    []initStep
	warnings []string
}

type initStep struct {
	name string
	took time.Duration
	at   time.Time // when the line reached the daemon side
}

func (h *stepLog) Enabled(context.Context, slog.Level) bool { return true }

func (h *stepLog) Handle(_ context.Context, r slog.Record) error {
	at := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if name, took, ok := parseStepLine(r.Message); ok {
		h.steps = append(h.steps, initStep{name: name, took: took, at: at})
	} else if r.Level >= slog.LevelWarn {
		h.warnings = append(h.warnings, r.Message)
	}
	return nil
}

func (h *stepLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *stepLog) WithGroup(string) slog.Handler      { return h }

func (h *stepLog) reset() {
	h.mu.Lock()
	h.steps, h.warnings = nil, nil
	h.mu.Unlock()
}

// take returns what was logged since reset. The init sends its step logs
// before "started", and Start relays them in order, so once Start has
// returned every step of that start is here.
func (h *stepLog) take() ([]initStep, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := append([]initStep(nil), h.steps...)
	sort.SliceStable(s, func(i, j int) bool { return s[i].at.Before(s[j].at) })
	return s, append([]string(nil), h.warnings...)
}

// parseStepLine reads the init's "step mount took 1.234ms".
func parseStepLine(msg string) (string, time.Duration, bool) {
	rest, ok := strings.CutPrefix(msg, "step ")
	if !ok {
		return "", 0, false
	}
	name, took, ok := strings.Cut(rest, " took ")
	if !ok {
		return "", 0, false
	}
	d, err := time.ParseDuration(took)
	if err != nil {
		return "", 0, false
	}
	return name, d, true
}
