package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/daemon/daemontest"
	"github.com/cortexrt/cortex/internal/logs"
	cmanifest "github.com/cortexrt/cortex/internal/manifest"
)

func manifest(project string, agents ...string) string {
	return "version: \"1\"\nproject: " + project + "\nagents:\n" + strings.Join(agents, "")
}

func pyAgent(name, entry string, extra string) string {
	return fmt.Sprintf("  - name: %s\n    runtime: python3.11\n    entrypoint: %s\n%s", name, entry, extra)
}

// TestSwarmRunsAndStops runs the example swarm attached: every agent's
// output shows with its prefix, every agent ends stopped/Exited and the
// command exits 0.
func TestSwarmRunsAndStops(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	root, _ := daemontest.ModuleRoot()
	r := d.CLI("", "run", filepath.Join(root, "examples", "swarm"))
	if r.Code != 0 {
		t.Fatalf("run exit %d\nstdout:\n%s\nstderr:\n%s\nlog:\n%s", r.Code, r.Stdout, r.Stderr, d.LogText())
	}
	for _, want := range []string{"researcher |", "writer", "summarizer |", "summary: Three findings on confining agents"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.Stdout)
		}
	}
	var agents []api.AgentStatus
	daemontest.JSON(t, d.MustCLI("", "list", "-a", "--json"), &agents)
	if len(agents) != 3 {
		t.Fatalf("agents = %+v", agents)
	}
	for _, a := range agents {
		if a.State != api.Stopped || a.Reason != "Exited" || a.ExitCode == nil || *a.ExitCode != 0 {
			t.Errorf("%s: %s %s %v, want stopped Exited 0", a.Agent, a.State, a.Reason, a.ExitCode)
		}
	}
	// The example asks for runtime ranges; inspect shows what was picked.
	for ref, rng := range map[string]string{"research-swarm/researcher": "python>=3.10", "research-swarm/summarizer": "nodejs>=18"} {
		in := inspect(t, d, ref)
		cands, _ := cmanifest.RuntimeCandidates(rng)
		if in.Spec.RuntimeRange != rng || !slices.Contains(cands, in.Spec.Runtime) {
			t.Errorf("%s: runtime %q from range %q, want a runtime of %s", ref, in.Spec.Runtime, in.Spec.RuntimeRange, rng)
		}
		t.Logf("%s: %s picked for %s", ref, in.Spec.Runtime, rng)
	}
}

// TestOOMKilled: an agent allocating past its ceiling is killed by the
// kernel, ends failed/OOMKilled promptly, and its cgroup is removed.
func TestOOMKilled(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	dir := daemontest.Project(t, map[string]string{
		"cortex.yaml": manifest("oom", pyAgent("hog", "hog:main", "    resources: {mem_limit: 64Mi}\n")),
		"hog.py": `import time
def main():
    print("allocating", flush=True)
    chunks = []
    while True:
        chunks.append(bytearray(16 << 20))  # touched: bytearray zero-fills
`,
	})
	d.MustCLI(dir, "run", "-d", ".")
	a := d.Final("oom", "hog", 60*time.Second)
	if a.State != api.Failed || a.Reason != "OOMKilled" {
		t.Fatalf("hog ended %s/%s, want failed/OOMKilled", a.State, a.Reason)
	}
	in := inspect(t, d, "oom/hog")
	var running, failed time.Time
	for _, e := range in.History {
		switch e.State {
		case "running":
			running = e.Time
		case "failed":
			failed = e.Time
		}
	}
	// 64 MiB at 16 MiB a step is reached within a few allocations; the
	// kernel kill and our accounting must follow within a second or two.
	if d := failed.Sub(running); d > 5*time.Second {
		t.Errorf("OOM took %s from running to failed", d)
	}
	if dirs := d.CgroupDirs(); len(dirs) != 0 {
		t.Errorf("cgroup not removed after OOM: %v", dirs)
	}
	// inspect says what the memory was made of at the kill.
	o := in.LastOOM
	if o == nil {
		t.Fatalf("inspect has no last_oom after an OOM kill")
	}
	t.Logf("last_oom: %+v", *o)
	if o.Limit != 64<<20 || (o.Peak != 0 && (o.Peak < 48<<20 || o.Peak > 66<<20)) || o.Shmem > o.File {
		t.Errorf("last_oom = %+v, want limit 64Mi and a peak near it", *o)
	}
}

func inspect(t *testing.T, d *daemontest.Daemon, ref string) api.Inspection {
	t.Helper()
	var ins []api.Inspection
	daemontest.JSON(t, d.MustCLI("", "inspect", ref), &ins)
	if len(ins) != 1 {
		t.Fatalf("inspect %s: %+v", ref, ins)
	}
	return ins[0]
}

// TestRestartLimit: on-failure restarts up to max_restarts, then the
// agent ends failed/RestartLimit, with every run in its history.
func TestRestartLimit(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	dir := daemontest.Project(t, map[string]string{
		"cortex.yaml": manifest("flaky", pyAgent("flaky", "flaky:main", "    restart_policy: on-failure\n    max_restarts: 2\n")),
		"flaky.py":    "import os, sys\ndef main():\n    print('run', os.environ['CORTEX_RUN'])\n    sys.exit(3)\n",
	})
	r := d.CLI(dir, "run", ".")
	if r.Code == 0 {
		t.Fatalf("attached run of a failing agent exited 0:\n%s", r.Stdout)
	}
	for _, run := range []string{"run 0", "run 1", "run 2"} {
		if !strings.Contains(r.Stdout, "flaky | "+run) {
			t.Errorf("missing %q in output:\n%s", run, r.Stdout)
		}
	}
	if strings.Contains(r.Stdout, "run 3") {
		t.Errorf("restarted past max_restarts:\n%s", r.Stdout)
	}
	a := d.Final("flaky", "flaky", 30*time.Second)
	if a.State != api.Failed || a.Reason != "RestartLimit" || a.Restarts != 2 || a.ExitCode == nil || *a.ExitCode != 3 {
		t.Fatalf("got %s/%s restarts=%d code=%v, want failed/RestartLimit restarts=2 code=3", a.State, a.Reason, a.Restarts, a.ExitCode)
	}
	in := inspect(t, d, "flaky")
	starts := 0
	for _, e := range in.History {
		if e.State == "running" {
			starts++
		}
	}
	if starts != 3 {
		t.Errorf("history has %d runs, want 3: %+v", starts, in.History)
	}
}

// counter is an agent printing an increasing number every 20 ms.
const counter = `import time
def main():
    i = 0
    while True:
        i += 1
        print(i, flush=True)
        time.sleep(0.02)
`

// lastCount returns the highest number the counter agent logged.
func lastCount(t *testing.T, d *daemontest.Daemon, ref string) int {
	t.Helper()
	out := d.MustCLI("", "logs", "--json", ref)
	last := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var rec logs.Record
		if json.Unmarshal(sc.Bytes(), &rec) != nil || rec.Stream != "stdout" {
			continue
		}
		if n, err := strconv.Atoi(rec.Message); err == nil && n > last {
			last = n
		}
	}
	return last
}

// TestSuspendResume: a counting agent does not advance while suspended
// and goes on after resume.
func TestSuspendResume(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	dir := daemontest.Project(t, map[string]string{
		"cortex.yaml": manifest("count", pyAgent("counter", "counter:main", "")),
		"counter.py":  counter,
	})
	d.MustCLI(dir, "run", "-d", ".")
	d.WaitAgent("count", "counter", 20*time.Second, "running", func(a api.AgentStatus) bool { return a.State == api.Running })
	waitCount(t, d, "counter", 5)
	d.MustCLI("", "suspend", "counter")
	if a, _ := d.Agent("count", "counter"); a.State != api.Suspended {
		t.Fatalf("state after suspend: %s", a.State)
	}
	time.Sleep(200 * time.Millisecond) // let the last line written before the freeze arrive
	frozen := lastCount(t, d, "counter")
	time.Sleep(time.Second)
	if after := lastCount(t, d, "counter"); after != frozen {
		t.Fatalf("counter advanced while suspended: %d -> %d", frozen, after)
	}
	d.MustCLI("", "resume", "counter")
	waitCount(t, d, "counter", frozen+5)
	if a, _ := d.Agent("count", "counter"); a.State != api.Running {
		t.Fatalf("state after resume: %s", a.State)
	}
}

func waitCount(t *testing.T, d *daemontest.Daemon, ref string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if lastCount(t, d, ref) >= n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never reached %d", ref, n)
}

// TestKillGrace: kill sends SIGTERM and waits the grace period before
// SIGKILL; the agent ends stopped/Killed and is not restarted.
func TestKillGrace(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	dir := daemontest.Project(t, map[string]string{
		"cortex.yaml": manifest("grace",
			pyAgent("stubborn", "agents:stubborn", "    restart_policy: always\n"),
			pyAgent("polite", "agents:polite", "    restart_policy: always\n")),
		"agents.py": `import signal, sys, time
def stubborn():
    signal.signal(signal.SIGTERM, lambda *a: print("ignoring SIGTERM", flush=True))
    print("ready", flush=True)
    while True:
        time.sleep(0.05)
def polite():
    print("ready", flush=True)
    while True:
        time.sleep(0.05)
`,
	})
	d.MustCLI(dir, "run", "-d", ".")
	for _, a := range []string{"stubborn", "polite"} {
		d.WaitAgent("grace", a, 20*time.Second, "running", func(s api.AgentStatus) bool { return s.State == api.Running })
	}
	waitLine(t, d, "grace/stubborn", "ready")
	start := time.Now()
	d.MustCLI("", "kill", "--grace", "1500ms", "grace/stubborn")
	took := time.Since(start)
	if took < 1500*time.Millisecond {
		t.Errorf("kill of a SIGTERM-ignoring agent returned after %s, before the 1.5s grace", took)
	}
	a, _ := d.Agent("grace", "stubborn")
	if a.State != api.Stopped || a.Reason != "Killed" || a.ExitCode == nil || *a.ExitCode != 128+int(syscall.SIGKILL) {
		t.Errorf("stubborn: %s/%s code %v, want stopped/Killed 137", a.State, a.Reason, a.ExitCode)
	}
	waitLine(t, d, "grace/stubborn", "ignoring SIGTERM")

	start = time.Now()
	d.MustCLI("", "kill", "--grace", "10s", "grace/polite")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("kill of an agent that obeys SIGTERM took %s", took)
	}
	a, _ = d.Agent("grace", "polite")
	if a.State != api.Stopped || a.Reason != "Killed" || a.ExitCode == nil || *a.ExitCode != 128+int(syscall.SIGTERM) {
		t.Errorf("polite: %s/%s code %v, want stopped/Killed 143", a.State, a.Reason, a.ExitCode)
	}
	// restart_policy: always must not bring a killed agent back.
	time.Sleep(500 * time.Millisecond)
	for _, n := range []string{"stubborn", "polite"} {
		if a, _ := d.Agent("grace", n); a.State != api.Stopped || a.Restarts != 0 {
			t.Errorf("%s came back after kill: %+v", n, a)
		}
	}
}

// waitExitFile waits until the sandbox init of project/agent has written
// the agent's exit status, which it does when the agent ends, daemon or
// no daemon.
func waitExitFile(t *testing.T, d *daemontest.Daemon, project, agent string) {
	t.Helper()
	path := filepath.Join(config.NewPaths(d.Root).RunDir, "agents", project, agent, "exit.json")
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var st map[string]any
		if data, err := os.ReadFile(path); err == nil && json.Unmarshal(data, &st) == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s/%s: no exit status in %s", project, agent, path)
}

func waitLine(t *testing.T, d *daemontest.Daemon, ref, line string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(d.MustCLI("", "logs", ref), line) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never logged %q", ref, line)
}

// TestDaemonKill9Restart: after kill -9 of the daemon and a restart, the
// agent still alive is reattached (same pid, still counting, output not
// lost), the agent that ended meanwhile is accounted for with its real
// exit code, and after removal nothing is leaked.
func TestDaemonKill9Restart(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	dir := daemontest.Project(t, map[string]string{
		"cortex.yaml": manifest("survive",
			pyAgent("counter", "counter:main", ""),
			pyAgent("brief", "brief:main", "")),
		"counter.py": counter,
		"brief.py":   "import time, sys\ndef main():\n    time.sleep(1.5)\n    print('bye', flush=True)\n    sys.exit(7)\n",
	})
	d.MustCLI(dir, "run", "-d", ".")
	before := d.WaitAgent("survive", "counter", 20*time.Second, "running", func(a api.AgentStatus) bool { return a.State == api.Running })
	d.WaitAgent("survive", "brief", 20*time.Second, "running", func(a api.AgentStatus) bool { return a.State == api.Running })
	waitCount(t, d, "survive/counter", 3)

	d.Kill9()
	waitExitFile(t, d, "survive", "brief") // brief exits while the daemon is down; counter keeps printing
	d.StartDaemon()

	after, _ := d.Agent("survive", "counter")
	if after.State != api.Running || after.Pid != before.Pid {
		t.Fatalf("counter after restart: %s pid %d, want running pid %d", after.State, after.Pid, before.Pid)
	}
	b := d.Final("survive", "brief", 10*time.Second)
	if b.State != api.Failed || b.Reason != "Exited" || b.ExitCode == nil || *b.ExitCode != 7 {
		t.Errorf("brief: %s/%s code %v, want failed/Exited 7 (status recorded while the daemon was down)", b.State, b.Reason, b.ExitCode)
	}
	if !strings.Contains(d.MustCLI("", "logs", "survive/brief"), "bye") {
		t.Errorf("output brief wrote while the daemon was down is lost")
	}
	// The counter's numbers have no gap across the restart.
	n := lastCount(t, d, "survive/counter")
	waitCount(t, d, "survive/counter", n+5)
	out := d.MustCLI("", "logs", "--json", "survive/counter")
	seen := map[int]bool{}
	max := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var rec logs.Record
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Stream == "stdout" {
			if v, err := strconv.Atoi(rec.Message); err == nil {
				seen[v] = true
				if v > max {
					max = v
				}
			}
		}
	}
	for i := 1; i <= max; i++ {
		if !seen[i] {
			t.Fatalf("counter line %d lost across the daemon restart (max %d)", i, max)
		}
	}
	d.MustCLI("", "stop", "survive")
	d.MustCLI("", "rm", "survive")
	d.CheckNoLeaks()
}

// TestLogBurst: 100,000 lines written as fast as the agent can arrive
// complete and in order.
func TestLogBurst(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	const n = 100000
	dir := daemontest.Project(t, map[string]string{
		"cortex.yaml": manifest("burst", pyAgent("loud", "loud:main", "")),
		"loud.py":     fmt.Sprintf("import sys\ndef main():\n    w = sys.stdout.write\n    for i in range(%d):\n        w('line %%d\\n' %% i)\n    sys.stdout.flush()\n", n),
	})
	d.MustCLI(dir, "run", "-d", ".")
	d.Final("burst", "loud", 120*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	next := 0
	err := d.Client.Logs(ctx, api.LogsQuery{Project: "burst", Agent: "loud"}, func(rec logs.Record) error {
		if rec.Stream != "stdout" {
			return nil
		}
		if want := "line " + strconv.Itoa(next); rec.Message != want {
			return fmt.Errorf("record %d is %q, want %q", next, rec.Message, want)
		}
		next++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if next != n {
		t.Fatalf("got %d lines, want %d", next, n)
	}
}

// TestAutostartAndOpsSymlink: `cortex run` with no daemon starts one (the
// embedded default); cortex-ops prints its help.
func TestAutostartAndOpsSymlink(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{NoStart: true})
	root, _ := daemontest.ModuleRoot()
	r := d.CLI("", "run", filepath.Join(root, "examples", "hello"))
	if r.Code != 0 || !strings.Contains(r.Stdout, "hello from greeter") {
		t.Fatalf("run with no daemon: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	pidData, err := os.ReadFile(filepath.Join(d.Root, "run", "cortex", "cortexd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(pidData)))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = d.Client.Remove(ctx, "hello", true)
		_ = syscall.Kill(pid, syscall.SIGTERM)
		for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(50 * time.Millisecond)
		}
	})
	ops := daemontest.Binaries(t) + "/cortex-ops"
	out, err := execOut(ops, "--help")
	if err != nil || !strings.Contains(out, "cortex-ops") {
		t.Fatalf("cortex-ops --help: %v\n%s", err, out)
	}
}

// TestAttachedCtrlC: Ctrl-C of an attached `cortex run` stops the swarm
// cleanly (every agent stopped/Killed, nothing left running) and the
// command exits 130 once it is done.
func TestAttachedCtrlC(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	dir := daemontest.Project(t, map[string]string{
		"cortex.yaml": manifest("ctrlc", pyAgent("one", "counter:main", "    restart_policy: always\n"), pyAgent("two", "counter:main", "")),
		"counter.py":  counter,
	})
	cmd := exec.Command(filepath.Join(daemontest.Binaries(t), "cortex"), "run", ".")
	cmd.Dir = dir
	cmd.Env = d.Env()
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"one", "two"} {
		d.WaitAgent("ctrlc", a, 20*time.Second, "running", func(s api.AgentStatus) bool { return s.State == api.Running })
	}
	waitCount(t, d, "ctrlc/one", 3)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("cortex run did not return after Ctrl-C:\n%s", out.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit code %d after Ctrl-C, want 130\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "Stopping ctrlc") || !strings.Contains(out.String(), "one | stopped (Killed)") {
		t.Errorf("output:\n%s", out.String())
	}
	for _, a := range []string{"one", "two"} {
		if s, _ := d.Agent("ctrlc", a); s.State != api.Stopped || s.Reason != "Killed" {
			t.Errorf("%s after Ctrl-C: %s/%s", a, s.State, s.Reason)
		}
	}
	if procs := d.SandboxProcesses(); len(procs) != 0 {
		t.Errorf("sandboxes still running after Ctrl-C: %v", procs)
	}
}
