package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/cgroups"
	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/daemon/daemontest"
	"github.com/cortexrt/cortex/internal/doctor/doctortest"
	"github.com/cortexrt/cortex/internal/kerneltest"
	"github.com/cortexrt/cortex/internal/llm/llmtest"
	"github.com/cortexrt/cortex/internal/logs"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// dnsServer answers every query (REFUSED) on loopback: an upstream
// resolver that is up, for egress.resolver.
func dnsServer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeRefused)
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

// deadUDP is a loopback address where no DNS server answers.
func deadUDP(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

type opsRoot struct {
	d       *daemontest.Daemon
	paths   config.Paths
	keyFile string
	llm     *llmtest.Server
	cfg     string
}

// startOpsRoot starts a daemon whose root is healthy by every check this
// test host can pass: an LLM provider (llmtest's fake) with a key file
// under etc/cortex/keys, a DNS server that answers for egress.resolver,
// an alias for doctor --explain.
func startOpsRoot(t *testing.T, extra string) *opsRoot {
	t.Helper()
	d := daemontest.Start(t, daemontest.Options{NoStart: true})
	r := &opsRoot{d: d, paths: config.NewPaths(d.Root)}
	const key = "sk-ops-e2e-4c1d"
	r.llm = llmtest.New(t, llmtest.OpenAI, key)
	r.keyFile = filepath.Join(filepath.Dir(r.paths.ConfigFile), "keys", "openai.key")
	if err := os.MkdirAll(filepath.Dir(r.keyFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.cfg = daemontest.DefaultConfig + fmt.Sprintf(`egress:
  resolver: %s
llm:
  providers:
    - name: fake
      kind: openai
      base_url: %s
      api_key_file: %s
  aliases:
    ops-explain:
      targets:
        - provider: fake
          model: gpt-fake-ops
ops:
  explain_alias: ops-explain
%s`, dnsServer(t), r.llm.URL, r.keyFile, extra)
	r.writeConfig(t, r.cfg)
	d.StartDaemon()
	return r
}

func (r *opsRoot) writeConfig(t *testing.T, cfg string) {
	t.Helper()
	if err := os.WriteFile(r.paths.ConfigFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

// doctor runs cortex-ops doctor --json ARGS, checks the report against
// the schema and the exit code against the report.
func (r *opsRoot) doctor(t *testing.T, args ...string) (api.DoctorReport, map[string]api.Check) {
	t.Helper()
	res := r.d.Ops(append([]string{"doctor", "--json"}, args...)...)
	doctortest.MustValidate(t, []byte(res.Stdout))
	var rep api.DoctorReport
	daemontest.JSON(t, res.Stdout, &rep)
	if res.Code != rep.ExitCode {
		t.Fatalf("doctor exit %d, report says %d\n%s", res.Code, rep.ExitCode, res.Stderr)
	}
	m := map[string]api.Check{}
	for _, c := range rep.Checks {
		m[c.ID] = c
	}
	return rep, m
}

func wantStatus(t *testing.T, m map[string]api.Check, id string, st api.CheckStatus, evidence string) {
	t.Helper()
	c, ok := m[id]
	if !ok {
		t.Errorf("%s: not in the report", id)
		return
	}
	if c.Status != st || !strings.Contains(c.Evidence, evidence) {
		t.Errorf("%s: %s %q, want %s with %q", id, c.Status, c.Evidence, st, evidence)
	}
}

func modeOf(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// TestDoctorFaultsRepairUndo: on a healthy root every check is ok or
// skipped with a reason, and --explain sends the report (JSON only, no
// key) to the LLM alias; then each injected fault is reported by its
// check, fixed by repair where the fix is automatic, and put back exactly
// by --undo.
func TestDoctorFaultsRepairUndo(t *testing.T) {
	kerneltest.RequireRoot(t)
	r := startOpsRoot(t, "")
	d := r.d

	rep, m := r.doctor(t)
	if rep.Runner != "daemon" || rep.ExitCode == 2 || len(rep.Checks) < 15 {
		t.Fatalf("healthy root: runner %s exit %d, %d checks", rep.Runner, rep.ExitCode, len(rep.Checks))
	}
	// Checks of the host itself (not of the root) may warn on a host
	// that lacks a second wall or a synchronised clock; every check of
	// the root must be ok, or skipped with its reason.
	hostOnly := map[string]bool{"kernel.landlock": true, "kernel.namespaces": true, "clock.sanity": true, "uids.range": true}
	for _, c := range rep.Checks {
		switch {
		case c.Status == api.CheckOK, c.Status == api.CheckSkip && c.Evidence != "":
		case c.Status == api.CheckWarn && hostOnly[c.ID]:
			t.Logf("this host: %s warns: %s", c.ID, c.Evidence)
		default:
			t.Errorf("healthy root: %s is %s: %s", c.ID, c.Status, c.Evidence)
		}
	}
	wantStatus(t, m, "llm.providers", api.CheckOK, "fake answered 200")
	wantStatus(t, m, "egress.dns", api.CheckOK, "from egress.resolver")

	// --explain: the report, and only it, goes to the alias.
	r.llm.SetDefault(llmtest.Reply{Text: "All checks pass. Nothing to do.", Usage: llmtest.Usage{Input: 10, Output: 6}})
	ex := d.Ops("doctor", "--json", "--explain", "--check", "kernel.*")
	var exRep api.DoctorReport
	daemontest.JSON(t, ex.Stdout, &exRep)
	doctortest.MustValidate(t, []byte(ex.Stdout))
	if ex.Code == 2 || exRep.Explain == nil || exRep.Explain.Text != "All checks pass. Nothing to do." || exRep.Explain.Alias != "ops-explain" {
		t.Fatalf("--explain: exit %d %+v\n%s", ex.Code, exRep.Explain, ex.Stderr)
	}
	last, _ := r.llm.Last()
	body := string(last.Body)
	if !strings.Contains(body, `\"schema\":\"cortex.doctor/v1\"`) || !strings.Contains(body, "kernel.cgroups") || strings.Contains(body, "sk-ops-e2e") {
		t.Errorf("what --explain sent: %s", body)
	}

	// The faults.
	var cgDirs []string
	for _, p := range cgroups.ParentDirs(d.CgroupParent()) {
		dir := filepath.Join(p, "ghost", "stale")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cgDirs = append(cgDirs, dir)
	}
	t.Cleanup(func() {
		for _, dir := range cgDirs {
			_ = unix.Rmdir(dir)
			_ = unix.Rmdir(filepath.Dir(dir))
		}
	})
	orphan := filepath.Join(r.paths.LibDir, "bundles", strings.Repeat("ab", 32))
	if err := os.MkdirAll(orphan, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(orphan, "cortex.yaml"), []byte("project: gone\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(r.keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(r.paths.RunDir, "agents", "ghost", "crashed", "bus", "bus.sock")
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	// A full log disk: a small tmpfs over the log directory, filled.
	if err := unix.Mount("tmpfs", r.paths.LogDir, "tmpfs", 0, "size=1m,mode=0750"); err != nil {
		t.Fatalf("mount a tmpfs over %s: %v", r.paths.LogDir, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(r.paths.LogDir, unix.MNT_DETACH) })
	_ = os.WriteFile(filepath.Join(r.paths.LogDir, "filler"), make([]byte, 1<<20), 0o600)

	rep, m = r.doctor(t)
	if rep.ExitCode != 2 {
		t.Errorf("faults: exit %d", rep.ExitCode)
	}
	wantStatus(t, m, "stale.cgroups", api.CheckWarn, "ghost/stale")
	wantStatus(t, m, "bundles.orphaned", api.CheckWarn, orphan)
	wantStatus(t, m, "perms.files", api.CheckFail, r.keyFile+": mode 0644, want 0600")
	wantStatus(t, m, "stale.sockets", api.CheckWarn, sock)
	wantStatus(t, m, "disk.space", api.CheckFail, r.paths.LogDir+" (tmpfs")
	if f := m["disk.space"].Fix; f == nil || f.Kind != api.FixManual {
		t.Errorf("disk.space fix: %+v", f)
	}

	// No terminal and no --yes: nothing changes. --dry-run: nothing either.
	if res := d.Ops("repair"); res.Code == 0 || !strings.Contains(res.Stderr, "nothing was changed") {
		t.Errorf("repair without --yes: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}
	var plan api.RepairResponse
	daemontest.JSON(t, d.Ops("repair", "--dry-run", "--json").Stdout, &plan)
	if !plan.DryRun || len(plan.Transactions) != 4 || modeOf(t, r.keyFile).Perm() != 0o644 || !exists(sock) || !exists(orphan) || !exists(cgDirs[0]) {
		t.Fatalf("dry run: %+v (key mode %v)", plan, modeOf(t, r.keyFile))
	}

	res := d.Ops("repair", "--yes", "--json")
	var done api.RepairResponse
	daemontest.JSON(t, res.Stdout, &done)
	if res.Code != 0 || len(done.Transactions) != 4 || len(done.Failed) != 0 {
		t.Fatalf("repair --yes: exit %d %+v\n%s", res.Code, done, res.Stderr)
	}
	txns := map[string]string{}
	for _, tx := range done.Transactions {
		txns[tx.Check] = tx.ID
		if tx.ID == "" || tx.State != "committed" {
			t.Errorf("transaction %+v", tx)
		}
	}
	if len(done.Manual) == 0 || done.Manual[0].ID != "disk.space" {
		t.Errorf("manual fixes: %+v", done.Manual)
	}
	if modeOf(t, r.keyFile).Perm() != 0o600 || exists(sock) || exists(orphan) || exists(cgDirs[0]) {
		t.Fatalf("after repair: key %v, socket %v, orphan %v, cgroup %v", modeOf(t, r.keyFile), exists(sock), exists(orphan), exists(cgDirs[0]))
	}
	_, m = r.doctor(t)
	for _, id := range []string{"stale.cgroups", "bundles.orphaned", "perms.files", "stale.sockets"} {
		wantStatus(t, m, id, api.CheckOK, "")
	}
	// Each transaction is on the daemon's event stream (its log records it).
	for check, id := range txns {
		if !strings.Contains(d.LogText(), "id="+id) {
			t.Errorf("%s: transaction %s not in the daemon's log", check, id)
		}
	}

	// Undo puts each back exactly.
	for _, check := range []string{"perms.files", "stale.sockets", "bundles.orphaned", "stale.cgroups"} {
		res := d.Ops("repair", "--undo", txns[check], "--json")
		var tx api.Txn
		daemontest.JSON(t, res.Stdout, &tx)
		if res.Code != 0 || tx.State != "undone" {
			t.Errorf("undo %s: exit %d %+v\n%s", check, res.Code, tx, res.Stderr)
		}
	}
	if modeOf(t, r.keyFile).Perm() != 0o644 || modeOf(t, sock)&os.ModeSocket == 0 || !exists(filepath.Join(orphan, "cortex.yaml")) || !exists(cgDirs[0]) {
		t.Fatalf("after undo: key %v, socket %v, orphan %v, cgroup %v", modeOf(t, r.keyFile), exists(sock), exists(orphan), exists(cgDirs[0]))
	}
	// Undo refuses what changed since.
	if res := d.Ops("repair", "--undo", txns["perms.files"]); res.Code == 0 || !strings.Contains(res.Stderr, "undone already") {
		t.Errorf("second undo: %d %s", res.Code, res.Stderr)
	}
	d.Ops("repair", "--yes")
	if err := unix.Unmount(r.paths.LogDir, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
}

// corruptPage writes garbage over the second page of a SQLite file (the
// first holds the header and the schema).
func corruptPage(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(strings.Repeat("\xde\xad\xbe\xef", 1024)), 4096); err != nil {
		t.Fatal(err)
	}
}

func fileSum(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestDoctorOffline: with no daemon running (it would not start on a
// corrupted database), doctor runs the daemon's checks through cortexd
// ops: a corrupted copy of the state DB, a missing interpreter and a DNS
// server that does not answer are reported; repair salvages the database
// (the daemon then starts), and undo puts the corrupted file back.
func TestDoctorOffline(t *testing.T) {
	kerneltest.RequireRoot(t)
	r := startOpsRoot(t, "")
	d := r.d
	d.Stop()
	db := filepath.Join(r.paths.LibDir, "state.db")
	corruptPage(t, db)
	corrupted := fileSum(t, db)
	r.writeConfig(t, strings.Replace(r.cfg, "egress:\n  resolver: ", "runtimes:\n  python3.11: /nonexistent/bin/python3.11\negress:\n  resolver: "+deadUDP(t)+"\n  #", 1))

	rep, m := r.doctor(t)
	if rep.Runner != "offline" || rep.ExitCode != 2 {
		t.Fatalf("offline: runner %s exit %d", rep.Runner, rep.ExitCode)
	}
	wantStatus(t, m, "daemon.reachable", api.CheckSkip, "no daemon answers")
	wantStatus(t, m, "sqlite.integrity", api.CheckFail, db)
	wantStatus(t, m, "runtimes.interpreters", api.CheckFail, "runtimes.python3.11: /nonexistent/bin/python3.11")
	wantStatus(t, m, "egress.dns", api.CheckFail, "did not answer")
	wantStatus(t, m, "bus.health", api.CheckSkip, "not running")
	if f := m["sqlite.integrity"].Fix; f == nil || f.Kind != api.FixAuto {
		t.Errorf("sqlite fix %+v", f)
	}

	res := d.Ops("repair", "--yes", "--json", "--check", "sqlite.integrity")
	var done api.RepairResponse
	daemontest.JSON(t, res.Stdout, &done)
	if res.Code != 0 || done.Runner != "offline" || len(done.Transactions) != 1 {
		t.Fatalf("offline repair: exit %d %+v\n%s", res.Code, done, res.Stderr)
	}
	id := done.Transactions[0].ID
	_, m = r.doctor(t, "--check", "sqlite.integrity")
	wantStatus(t, m, "sqlite.integrity", api.CheckOK, "quick_check ok")
	if res := d.Ops("repair", "--undo", id); res.Code != 0 {
		t.Fatalf("undo: %d %s", res.Code, res.Stderr)
	}
	if got := fileSum(t, db); got != corrupted {
		t.Errorf("undo did not put the corrupted file back exactly")
	}
	_, m = r.doctor(t, "--check", "sqlite.integrity")
	wantStatus(t, m, "sqlite.integrity", api.CheckFail, db)
	var again api.RepairResponse
	daemontest.JSON(t, d.Ops("repair", "--yes", "--json", "--check", "sqlite.integrity").Stdout, &again)
	if len(again.Transactions) != 1 {
		t.Fatalf("second salvage: %+v", again)
	}
	r.writeConfig(t, r.cfg)
	d.StartDaemon() // on the salvaged database
	// The daemon puts what was done while it was down on its event stream.
	for _, tx := range []string{id, again.Transactions[0].ID} {
		if !strings.Contains(d.LogText(), "id="+tx) {
			t.Errorf("offline transaction %s not announced by the next daemon", tx)
		}
	}
	_, m = r.doctor(t, "--check", "sqlite.integrity", "--check", "runtimes.*")
	wantStatus(t, m, "sqlite.integrity", api.CheckOK, "quick_check ok")
	wantStatus(t, m, "runtimes.interpreters", api.CheckOK, "python3.11")
}

func writeExec(t *testing.T, path, script string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(script), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestOpsPluginsAndHooks: check plugins that hang or print garbage are
// failures of those plugins, not of doctor; a pre-run hook refuses a run
// with its message; agent hooks see agents end; a CLI plugin runs as a
// cortex command.
func TestOpsPluginsAndHooks(t *testing.T) {
	kerneltest.RequireRoot(t)
	d := daemontest.Start(t, daemontest.Options{Config: daemontest.DefaultConfig + "ops:\n  check_timeout: 2s\n  hook_timeout: 5s\n"})
	p := config.NewPaths(d.Root)
	checks := filepath.Join(p.PluginsDir, "checks")
	writeExec(t, filepath.Join(checks, "sleepy"), "#!/bin/sh\nsleep 1000\n", 0o755)
	writeExec(t, filepath.Join(checks, "garbage"), "#!/bin/sh\necho 'everything is fine, probably'\n", 0o755)
	writeExec(t, filepath.Join(checks, "backup"), `#!/bin/sh
echo '{"checks": [{"id": "age", "title": "backups are recent", "status": "warn", "evidence": "last backup 30h ago", "fix": {"kind": "manual", "description": "run the backup job"}}]}'
`, 0o755)
	start := time.Now()
	res := d.Ops("doctor", "--json", "--check", "plugin.*")
	took := time.Since(start)
	doctortest.MustValidate(t, []byte(res.Stdout))
	var rep api.DoctorReport
	daemontest.JSON(t, res.Stdout, &rep)
	m := map[string]api.Check{}
	for _, c := range rep.Checks {
		m[c.ID] = c
	}
	if res.Code != 2 {
		t.Errorf("exit %d", res.Code)
	}
	wantStatus(t, m, "plugin.sleepy", api.CheckFail, "did not")
	wantStatus(t, m, "plugin.garbage", api.CheckFail, "printed no doctor JSON")
	wantStatus(t, m, "plugin.backup.age", api.CheckWarn, "last backup 30h ago")
	t.Logf("doctor with a plugin that sleeps forever (check timeout 2s) took %s", took)

	// Hooks.
	hooks := p.HooksDir
	seen := filepath.Join(t.TempDir(), "exits")
	writeExec(t, filepath.Join(hooks, "pre-run.d", "10-policy"), `#!/bin/sh
if grep -q '"project":"forbidden"'; then
  echo "project forbidden is not allowed on this host" >&2
  exit 1
fi
`, 0o755)
	writeExec(t, filepath.Join(hooks, "agent-exit.d", "record"), "#!/bin/sh\ncat >> "+seen+"\necho >> "+seen+"\n", 0o755)
	bad := daemontest.Project(t, map[string]string{"cortex.yaml": manifest("forbidden", pyAgent("a", "a:main", "")), "a.py": "def main():\n    print('ran')\n"})
	res = d.CLI(bad, "run", "-d", ".")
	if res.Code == 0 || !strings.Contains(res.Stderr, "pre-run hook 10-policy refused: project forbidden is not allowed on this host") {
		t.Fatalf("refused run: exit %d\n%s", res.Code, res.Stderr)
	}
	if ents, _ := os.ReadDir(filepath.Join(p.LibDir, "bundles")); len(ents) != 0 {
		t.Errorf("a refused run left unpacked bundles: %v", ents)
	}
	good := daemontest.Project(t, map[string]string{"cortex.yaml": manifest("allowed", pyAgent("a", "a:main", "")), "a.py": "import sys\ndef main():\n    sys.exit(3)\n"})
	d.MustCLI(good, "run", "-d", ".")
	d.Final("allowed", "a", 20*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	var ev map[string]any
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(seen); err == nil && json.Unmarshal([]byte(strings.SplitN(string(b), "\n", 2)[0]), &ev) == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ev["event"] != "agent-exit" || ev["project"] != "allowed" || ev["state"] != "failed" || ev["exit_code"] != float64(3) {
		t.Errorf("agent-exit hook got %v", ev)
	}
	if !strings.Contains(d.LogText(), "project forbidden is not allowed") {
		t.Error("the hook's output is not in the daemon's log")
	}
	// A hook others may write is never run: runs are refused.
	writeExec(t, filepath.Join(hooks, "pre-run.d", "20-open"), "#!/bin/sh\nexit 0\n", 0o757)
	if res := d.CLI(good, "run", "-d", "."); res.Code == 0 || !strings.Contains(res.Stderr, "writable by every user") {
		t.Errorf("run with an untrusted pre-run hook: exit %d %s", res.Code, res.Stderr)
	}
	_, m2 := (&opsRoot{d: d}).doctor(t, "--check", "perms.hooks")
	wantStatus(t, m2, "perms.hooks", api.CheckFail, "20-open is writable by every user")
	if err := os.Remove(filepath.Join(hooks, "pre-run.d", "20-open")); err != nil {
		t.Fatal(err)
	}

	// A CLI plugin.
	writeExec(t, filepath.Join(p.PluginsDir, "cli", "cortex-hello"), `#!/bin/sh
echo "hello $* root=$CORTEX_ROOT host=$CORTEX_HOST name=$CORTEX_PLUGIN_NAME"
exit 7
`, 0o755)
	res = d.CLI("", "hello", "a", "b")
	want := fmt.Sprintf("hello a b root=%s host=unix://%s name=hello", d.Root, p.Socket)
	if res.Code != 7 || strings.TrimSpace(res.Stdout) != want {
		t.Errorf("cortex hello: exit %d %q, want 7 %q", res.Code, res.Stdout, want)
	}
	if res := d.Ops("hello"); !strings.HasPrefix(res.Stdout, "hello  root=") {
		t.Errorf("cortex-ops hello: %q", res.Stdout)
	}
	var plugins []map[string]any
	daemontest.JSON(t, d.MustCLI("", "plugin", "list", "--json"), &plugins)
	found := false
	for _, pl := range plugins {
		found = found || pl["name"] == "hello" && pl["source"] == "root"
	}
	if !found {
		t.Errorf("plugin list: %v", plugins)
	}
	if res := d.CLI("", "nosuchcommand"); res.Code != 2 || !strings.Contains(res.Stderr, `unknown command "nosuchcommand"`) {
		t.Errorf("unknown command: exit %d %s", res.Code, res.Stderr)
	}
}

// buildRelease builds cortexd from pkg with version (and cortex, unless
// cli names one already built) into dir with SHA256SUMS, stripped as
// `make build` makes them, as a release would ship them.
func buildRelease(dir, version, pkg, cli string) error {
	root, _ := daemontest.ModuleRoot()
	ld := "-s -w -X github.com/cortexrt/cortex/internal/daemon.Version=" + version + " -X github.com/cortexrt/cortex/internal/cli.Version=" + version
	builds := []struct{ out, pkg string }{{"cortexd", pkg}}
	if cli == "" {
		builds = append(builds, struct{ out, pkg string }{"cortex", "./cmd/cortex"})
	} else {
		data, err := os.ReadFile(cli)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "cortex"), data, 0o755); err != nil {
			return err
		}
	}
	for _, b := range builds {
		cmd := exec.Command("go", "build", "-ldflags", ld, "-o", filepath.Join(dir, b.out), b.pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	cmd := exec.Command("sha256sum", "cortex", "cortexd")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "SHA256SUMS"), out, 0o644)
}

// counts returns each agent's highest number so far.
func counts(t *testing.T, d *daemontest.Daemon, project string) map[string]int {
	t.Helper()
	out := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := d.Client.Logs(ctx, api.LogsQuery{Project: project}, func(rec logs.Record) error {
		if n, err := strconv.Atoi(rec.Message); err == nil && rec.Stream == "stdout" && n > out[rec.Agent] {
			out[rec.Agent] = n
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUpdateKeepsAgents: cortex-ops update to a rebuilt binary restarts
// the daemon on it while 20 agents keep running (same pids, output goes
// on without a gap); an update to a binary that comes up broken rolls
// back by itself and the agents still run; rollback goes back by hand.
func TestUpdateKeepsAgents(t *testing.T) {
	kerneltest.RequireRoot(t)
	d := daemontest.Start(t, daemontest.Options{NoStart: true})
	// The releases build while the agents start.
	release, broken := t.TempDir(), t.TempDir()
	built := make(chan error, 1)
	go func() {
		start := time.Now()
		err := buildRelease(release, "0.1.1-e2e", "./cmd/cortexd", "")
		if err == nil {
			err = buildRelease(broken, "0.1.1-e2e", "./e2e/testdata/brokend", filepath.Join(release, "cortex"))
		}
		t.Logf("built the releases in %s", time.Since(start))
		built <- err
	}()
	const n = 20
	var agents []string
	for i := 0; i < n; i++ {
		agents = append(agents, pyAgent(fmt.Sprintf("a%02d", i), "tick:main", ""))
	}
	dir := daemontest.Project(t, map[string]string{
		"cortex.yaml": manifest("fleet", agents...),
		"tick.py":     "import time\ndef main():\n    i = 0\n    while True:\n        i += 1\n        print(i, flush=True)\n        time.sleep(0.2)\n",
	})
	startRun := time.Now()
	d.MustCLI(dir, "run", "-d", ".") // the CLI starts the daemon (the embedded default)
	d.Adopt()
	pids := map[string]int{}
	deadline := time.Now().Add(30 * time.Second)
	for len(pids) < n && time.Now().Before(deadline) {
		list, err := d.Client.Agents(context.Background(), "fleet", false)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range list {
			if a.State == api.Running {
				pids[a.Agent] = a.Pid
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(pids) != n {
		t.Fatalf("%d of %d agents running", len(pids), n)
	}
	t.Logf("%d agents running %s after cortex run", n, time.Since(startRun))
	samePids := func(when string) {
		t.Helper()
		list, err := d.Client.Agents(context.Background(), "fleet", false)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for _, a := range list {
			if a.State != api.Running || a.Pid != pids[a.Agent] {
				t.Errorf("%s: %s is %s pid %d, was pid %d", when, a.Agent, a.State, a.Pid, pids[a.Agent])
			}
			got++
		}
		if got != n {
			t.Errorf("%s: %d agents", when, got)
		}
	}
	if err := <-built; err != nil {
		t.Fatal(err)
	}

	before := counts(t, d, "fleet")
	start := time.Now()
	res := d.Ops("update", "--from", release, "--json")
	t.Logf("update took %s", time.Since(start))
	var entry map[string]any
	daemontest.JSON(t, res.Stdout, &entry)
	if res.Code != 0 || entry["outcome"] != "ok" {
		t.Fatalf("update: exit %d %v\n%s\nlog:\n%s", res.Code, entry, res.Stderr, d.LogText())
	}
	d.Adopt()
	v, err := d.Client.Version(context.Background())
	if err != nil || v.Version != "0.1.1-e2e" || !strings.Contains(v.Executable, "usr/lib/cortex/versions/") {
		t.Fatalf("after update: %+v %v", v, err)
	}
	samePids("after the update")
	// Output goes on, with no number lost, for every agent.
	deadline = time.Now().Add(20 * time.Second)
	for {
		after := counts(t, d, "fleet")
		behind := 0
		for a, c := range before {
			if after[a] < c+3 {
				behind++
			}
		}
		if behind == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d agents' output did not go on after the update: before %v after %v", behind, before, after)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out := d.MustCLI("", "logs", "--json", "fleet/a07")
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
			t.Fatalf("a07's line %d lost across the update (max %d)", i, max)
		}
	}

	// A release whose cortexd comes up broken: rolled back by itself.
	res = d.Ops("update", "--from", broken, "--no-canary")
	if res.Code == 0 || !strings.Contains(res.Stderr, "failed its health check") || !strings.Contains(res.Stderr, "rolled back") {
		t.Fatalf("broken update: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}
	d.Adopt()
	if v, err := d.Client.Version(context.Background()); err != nil || v.Version != "0.1.1-e2e" {
		t.Fatalf("after the rollback: %+v %v", v, err)
	}
	samePids("after the automatic rollback")

	res = d.Ops("update", "--status", "--json")
	var st struct {
		History []struct {
			Action, Outcome string
			From, To        struct{ ID, Version string }
		}
	}
	daemontest.JSON(t, res.Stdout, &st)
	if len(st.History) != 2 || st.History[0].Outcome != "ok" || st.History[1].Outcome != "rolled-back" || st.History[1].To.Version != "9.9.9-broken" {
		t.Errorf("history: %+v", st.History)
	}

	// By hand, back to the version before the update.
	if res := d.Ops("rollback"); res.Code != 0 {
		t.Fatalf("rollback: %d\n%s", res.Code, res.Stderr)
	}
	d.Adopt()
	if v, err := d.Client.Version(context.Background()); err != nil || v.Version == "0.1.1-e2e" {
		t.Fatalf("after rollback: %+v %v", v, err)
	}
	samePids("after rollback")
}
