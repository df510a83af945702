package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/daemon/daemontest"
	"github.com/cortexrt/cortex/internal/runtimes/runtimestest"
)

const apiSecurityConfig = daemontest.DefaultConfig + `api:
  listen: "127.0.0.1:0"
  rate_limits:
    viewer: {rate: 2, burst: 30}
audit:
  segment_size: 64Ki
  checkpoint_interval: 200ms
`

// remote is a client environment for the daemon's TLS listener.
type remote struct {
	d   *daemontest.Daemon
	env []string
}

func (r remote) cli(args ...string) daemontest.Result {
	r.d.T().Helper()
	return r.d.CLIEnv(context.Background(), r.env, "", args...)
}

func (r remote) must(args ...string) string {
	r.d.T().Helper()
	res := r.cli(args...)
	if res.Code != 0 {
		r.d.T().Fatalf("remote cortex %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), res.Code, res.Stdout, res.Stderr)
	}
	return res.Stdout
}

// refused runs a command that must fail with exit 1 and a message.
func (r remote) refused(want string, args ...string) {
	r.d.T().Helper()
	res := r.cli(args...)
	if res.Code != 1 || !strings.Contains(res.Stderr, want) {
		r.d.T().Errorf("remote cortex %s: exit %d, stderr %q; want exit 1 with %q", strings.Join(args, " "), res.Code, res.Stderr, want)
	}
}

func listProjects(t *testing.T, out string) []string {
	var agents []api.AgentStatus
	daemontest.JSON(t, out, &agents)
	set := map[string]bool{}
	for _, a := range agents {
		set[a.Project] = true
	}
	var ps []string
	for p := range set {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// TestAPISecurity drives the API's security over real TLS through the
// real binaries: keys and roles bound to projects, revoked and expired
// keys, mTLS and a revoked serial, the rate limit, every kind of command
// remotely, and the audit trail of it all.
func TestAPISecurity(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Config: apiSecurityConfig})
	work := t.TempDir()
	caPath := filepath.Join(work, "ca.pem")
	if err := os.WriteFile(caPath, []byte(d.MustCLI("", "auth", "ca")), 0o644); err != nil {
		t.Fatal(err)
	}
	host := "https://" + d.APIAddr()
	key := func(name, role string, extra ...string) string {
		var k api.AuthKeyCreated
		daemontest.JSON(t, d.MustCLI("", append([]string{"auth", "key", "create", "--name", name, "--role", role, "--json"}, extra...)...), &k)
		if k.Name != name || !strings.HasPrefix(k.Secret, "cortex_") {
			t.Fatalf("key create: %+v", k)
		}
		return k.Secret
	}
	as := func(secret string) remote {
		return remote{d: d, env: []string{"CORTEX_HOST=" + host, "CORTEX_CA=" + caPath, "CORTEX_API_KEY=" + secret}}
	}
	// prod-y runs as root, locally.
	prod := daemontest.Project(t, map[string]string{
		"cortex.yaml": manifest("prod-y", pyAgent("web", "app:main", "")),
		"app.py":      "import time\ndef main():\n    print('hello prod-y', flush=True)\n    time.sleep(600)\n",
	})
	d.MustCLI(prod, "run", "-d", ".")
	ci := daemontest.Project(t, map[string]string{
		"cortex.yaml": manifest("ci-x", pyAgent("job", "app:main", "")),
		"app.py":      "def main():\n    print('hello ci-x', flush=True)\n",
	})

	viewer := as(key("ro", "viewer"))
	operator := as(key("ci", "operator", "--project", "ci-*"))

	t.Run("viewer-reads-not-runs", func(t *testing.T) {
		if got := listProjects(t, viewer.must("list", "-a", "--json")); strings.Join(got, ",") != "prod-y" {
			t.Errorf("viewer lists %v", got)
		}
		d.WaitAgent("prod-y", "web", 30*time.Second, "its hello", func(a api.AgentStatus) bool {
			return strings.Contains(d.MustCLI("", "logs", "prod-y/web"), "hello prod-y")
		})
		if out := viewer.must("logs", "prod-y/web"); !strings.Contains(out, "hello prod-y") {
			t.Errorf("viewer logs: %q", out)
		}
		viewer.refused("needs the operator role", "run", "-d", ci)
		viewer.refused("may not operate", "kill", "prod-y/web")
		viewer.refused("needs the admin role", "auth", "key", "list")
	})

	t.Run("logs-follow-remote", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(d.Bin, "cortex"), "logs", "-f", "prod-y/web")
		cmd.Env = append(d.Env(), viewer.env...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		found := false
		for sc.Scan() {
			if strings.Contains(sc.Text(), "hello prod-y") {
				found = true
				break
			}
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if !found {
			t.Error("logs -f over TLS did not stream the agent's line")
		}
	})

	t.Run("operator-bound-to-ci", func(t *testing.T) {
		// An attached run: upload, then the output over Server-Sent Events.
		out := operator.must("run", ci)
		if !strings.Contains(out, "hello ci-x") {
			t.Errorf("attached remote run printed %q", out)
		}
		if got := listProjects(t, operator.must("list", "-a", "--json")); strings.Join(got, ",") != "ci-x" {
			t.Errorf("operator lists %v, want only ci-x", got)
		}
		var in []api.Inspection
		daemontest.JSON(t, operator.must("inspect", "ci-x/job"), &in)
		if len(in) != 1 || in[0].SourceDir != "" {
			t.Errorf("a remote run recorded the client's directory: %+v", in)
		}
		for _, args := range [][]string{{"inspect", "prod-y/web"}, {"logs", "prod-y/web"}, {"stop", "prod-y"}, {"kill", "prod-y/web"}} {
			operator.refused(`project "prod-y" not found`, args...)
		}
		operator.refused(`no agent named "web"`, "inspect", "web")
		if out := operator.must("logs", "ci-x/job"); !strings.Contains(out, "hello ci-x") {
			t.Errorf("operator logs: %q", out)
		}
		operator.must("rm", "ci-x")
		if a, ok := d.Agent("prod-y", "web"); !ok || a.State != api.Running {
			t.Errorf("prod-y/web after the operator's attempts: %+v", a)
		}
	})

	t.Run("revoked-and-expired-keys", func(t *testing.T) {
		gone := as(key("gone", "viewer"))
		gone.must("list")
		d.MustCLI("", "auth", "key", "revoke", "gone")
		gone.refused("revoked", "list")
		short := as(key("short", "viewer", "--expires", "1s"))
		deadline := time.Now().Add(10 * time.Second)
		for {
			res := short.cli("list")
			if res.Code != 0 {
				if !strings.Contains(res.Stderr, "expired") {
					t.Errorf("expired key: %q", res.Stderr)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("a key created to expire in 1s still works after 10s")
			}
			time.Sleep(100 * time.Millisecond)
		}
		as("cortex_notakey").refused("not recognised", "list")
		remote{d: d, env: []string{"CORTEX_HOST=" + host, "CORTEX_CA=" + caPath}}.refused("no credentials", "list")
		remote{d: d, env: []string{"CORTEX_HOST=" + host, "CORTEX_API_KEY=x"}}.refused("CORTEX_CA", "list")
	})

	t.Run("client-context", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "ro.key"), []byte(key("ctx", "viewer")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := "version: \"1\"\ncurrent_context: lab\ncontexts:\n  lab:\n    host: " + host + "\n    ca: " + caPath + "\n    api_key_file: ro.key\n"
		if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		ctxClient := remote{d: d, env: []string{"CORTEX_CONFIG=" + filepath.Join(dir, "config.yaml")}}
		var who api.AuthWhoami
		daemontest.JSON(t, ctxClient.must("auth", "whoami", "--json"), &who)
		if who.Identity != "key:ctx" || !who.Remote {
			t.Errorf("whoami through the context: %+v", who)
		}
		if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg+"    bogus: 1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if r := ctxClient.cli("list"); r.Code != 2 || !strings.Contains(r.Stderr, "config.yaml:8:5: contexts.lab.bogus: unknown field") {
			t.Errorf("bad client config: exit %d %q", r.Code, r.Stderr)
		}
	})

	t.Run("mtls", func(t *testing.T) {
		d.MustCLI(work, "auth", "cert", "issue", "--name", "svc", "--role", "operator", "--project", "ci-*", "--out", work)
		if fi, err := os.Stat(filepath.Join(work, "svc.key")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("svc.key: %v %v", fi, err)
		}
		svc := remote{d: d, env: []string{"CORTEX_HOST=" + host, "CORTEX_CA=" + caPath, "CORTEX_CERT=" + filepath.Join(work, "svc.crt"), "CORTEX_KEY=" + filepath.Join(work, "svc.key")}}
		var who api.AuthWhoami
		daemontest.JSON(t, svc.must("auth", "whoami", "--json"), &who)
		if who.Identity != "cert:svc" || who.Role != "operator" || !who.Remote {
			t.Errorf("whoami: %+v", who)
		}
		if got := listProjects(t, svc.must("list", "-a", "--json")); len(got) != 0 {
			t.Errorf("svc (ci-*) lists %v", got)
		}
		var certs []api.AuthCert
		daemontest.JSON(t, d.MustCLI("", "auth", "cert", "list", "--json"), &certs)
		if len(certs) != 1 || certs[0].Name != "svc" {
			t.Fatalf("certs %+v", certs)
		}
		d.MustCLI("", "auth", "cert", "revoke", certs[0].Serial)
		svc.refused("revoked", "list")
	})

	t.Run("rate-limit", func(t *testing.T) {
		secret := key("burst", "viewer")
		pemBytes, _ := os.ReadFile(caPath)
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pemBytes)
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}}
		var limited *http.Response
		ok := 0
		for i := 0; i < 60 && limited == nil; i++ {
			req, _ := http.NewRequest("GET", host+"/v1/agents", nil)
			req.Header.Set("Authorization", "Bearer "+secret)
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode == http.StatusTooManyRequests {
				limited = resp
				break
			}
			resp.Body.Close()
			ok++
		}
		if limited == nil {
			t.Fatal("60 requests at once, none limited")
		}
		defer limited.Body.Close()
		var eb api.ErrorBody
		_ = json.NewDecoder(limited.Body).Decode(&eb)
		if ra, _ := strconv.Atoi(limited.Header.Get("Retry-After")); ra < 1 || eb.Category != "rate limited" || ok < 25 {
			t.Errorf("429 after %d: Retry-After %q, body %+v", ok, limited.Header.Get("Retry-After"), eb)
		}
		// TLS 1.2 is refused at the handshake.
		old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12}}}
		if resp, err := old.Get(host + "/v1/version"); err == nil {
			resp.Body.Close()
			t.Error("a TLS 1.2 client was served")
		}
	})

	t.Run("audit-trail", func(t *testing.T) {
		var es []api.AuditEntry
		daemontest.JSON(t, d.MustCLI("", "audit", "list", "--json", "--identity", "key:ci", "--limit", "0"), &es)
		outcomes := map[string]int{}
		for _, e := range es {
			outcomes[e.API.Outcome+" "+e.API.Project]++
			if e.API.Remote == "" || strings.HasPrefix(e.API.Remote, "unix") {
				t.Errorf("remote request without its client address: %+v", e.API)
			}
		}
		if outcomes["hidden prod-y"] < 4 || outcomes["ok ci-x"] == 0 || outcomes["allowed ci-x"] == 0 {
			t.Errorf("key:ci's audit outcomes: %v", outcomes)
		}
		daemontest.JSON(t, d.MustCLI("", "audit", "list", "--json", "--identity", "key:ro"), &es)
		denied := false
		for _, e := range es {
			denied = denied || (e.API.Outcome == "denied" && e.API.Status == 403 && e.API.Route == "POST /v1/projects")
		}
		if !denied {
			t.Error("the viewer's refused run is not in the audit log")
		}
		daemontest.JSON(t, d.MustCLI("", "audit", "list", "--json", "--project", "prod-y", "--kind", "event"), &es)
		if len(es) == 0 || es[0].Event.Type != "agent.state" {
			t.Errorf("prod-y's lifecycle events: %+v", es)
		}
		if out := d.MustCLI("", "audit", "verify"); !strings.Contains(out, "intact") {
			t.Errorf("verify: %q", out)
		}
		// The log verifies remotely too (fetched over the API, checked here).
		admin := as(key("auditor", "admin"))
		if out := admin.must("audit", "verify"); !strings.Contains(out, "intact") {
			t.Errorf("remote verify: %q", out)
		}
	})

	t.Run("tamper", func(t *testing.T) { auditTamper(t, d, work) })
}

// auditTamper: with enough entries for several segments and a kept
// checkpoint, every byte flip tried anywhere in the audit files, a
// deleted entry and the truncation of the newest entries are each caught
// by cortex audit verify (exit 1, naming what is wrong).
func auditTamper(t *testing.T, d *daemontest.Daemon, work string) {
	ctx := context.Background()
	for i := 0; i < 300; i++ {
		if _, err := d.Client.Version(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cpPath := filepath.Join(work, "kept.checkpoint")
	cp := d.MustCLI("", "audit", "checkpoint")
	if err := os.WriteFile(cpPath, []byte(cp), 0o644); err != nil {
		t.Fatal(err)
	}
	cpSize, _ := strconv.ParseUint(strings.Split(cp, "\n")[1], 10, 64)
	d.Stop()
	dir := filepath.Join(d.Root, "var", "lib", "cortex", "audit")
	verify := func(args ...string) daemontest.Result {
		return d.CLI("", append([]string{"audit", "verify"}, args...)...)
	}
	if r := verify("--checkpoint", cpPath); r.Code != 0 {
		t.Fatalf("untouched log: exit %d %s", r.Code, r.Stderr)
	}
	ents, _ := os.ReadDir(dir)
	var files []string
	for _, e := range ents {
		files = append(files, e.Name())
	}
	if !strings.Contains(strings.Join(files, " "), "segment-000002.jsonl") {
		t.Fatalf("no rotation happened: %v", files)
	}
	for _, name := range files {
		path := filepath.Join(dir, name)
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		rnd := rand.New(rand.NewSource(int64(len(orig))))
		positions := []int{0, 1, len(orig) / 2, len(orig) - 2, len(orig) - 1}
		for i := 0; i < 4; i++ {
			positions = append(positions, rnd.Intn(len(orig)))
		}
		for _, pos := range positions {
			b := bytes.Clone(orig)
			b[pos] ^= 0x01
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if r := verify(); r.Code != 1 || !strings.Contains(r.Stderr, "does not verify") {
				t.Errorf("%s byte %d flipped: exit %d, stderr %q", name, pos, r.Code, r.Stderr)
			}
		}
		if err := os.WriteFile(path, orig, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Delete an entry in the middle of the first segment.
	first := filepath.Join(dir, "segment-000001.jsonl")
	orig, _ := os.ReadFile(first)
	lines := bytes.SplitAfter(orig, []byte("\n"))
	cut := append(bytes.Join(lines[:5], nil), bytes.Join(lines[6:], nil)...)
	_ = os.WriteFile(first, cut, 0o600)
	if r := verify(); r.Code != 1 || !strings.Contains(r.Stderr, "entry 5") || !strings.Contains(r.Stderr, "missing") {
		t.Errorf("deleted entry 5: exit %d, stderr %q", r.Code, r.Stderr)
	}
	_ = os.WriteFile(first, orig, 0o600)
	// Truncate the newest entries: only the kept checkpoint can tell.
	removed := truncateBelow(t, dir, cpSize-3)
	if r := verify(); r.Code != 0 {
		t.Errorf("truncated log, no kept checkpoint: exit %d %s (nothing in the log itself can show a truncation)", r.Code, r.Stderr)
	}
	if r := verify("--checkpoint", cpPath); r.Code != 1 || !strings.Contains(r.Stderr, "newest") {
		t.Errorf("truncated log against the kept checkpoint: exit %d, stderr %q", r.Code, r.Stderr)
	}
	for path, data := range removed {
		_ = os.WriteFile(path, data, 0o600)
	}
	// Restored, the daemon continues the log and it verifies.
	d.StartDaemon()
	d.MustCLI("", "version")
	if r := verify("--checkpoint", cpPath); r.Code != 0 {
		t.Errorf("restored and continued: exit %d %s", r.Code, r.Stderr)
	}
}

// truncateBelow keeps only the entries with index < n in the audit
// directory and returns the original content of each file it changed or
// removed.
func truncateBelow(t *testing.T, dir string, n uint64) map[string][]byte {
	orig := map[string][]byte{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "segment-") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, _ := os.ReadFile(path)
		var keep [][]byte
		for _, l := range bytes.SplitAfter(data, []byte("\n")) {
			var idx struct {
				I uint64 `json:"i"`
			}
			if len(l) > 0 && json.Unmarshal(l, &idx) == nil && idx.I < n {
				keep = append(keep, l)
			}
		}
		if len(keep) == len(bytes.SplitAfter(data, []byte("\n")))-1 {
			continue
		}
		orig[path] = data
		if len(keep) == 0 {
			_ = os.Remove(path)
			continue
		}
		_ = os.WriteFile(path, bytes.Join(keep, nil), 0o600)
	}
	if len(orig) == 0 {
		t.Fatal(fmt.Sprintf("nothing to truncate below %d", n))
	}
	return orig
}

// TestLocalRoles: on the unix socket, a local user other than root sees
// and acts on the projects it runs, not root's, unless api.local_roles
// binds it a role; root is admin.
func TestLocalRoles(t *testing.T) {
	plain := daemontest.NewUser(t)
	watcher := daemontest.NewUser(t)
	d := daemontest.Start(t, daemontest.Options{Config: daemontest.DefaultConfig + "api:\n  local_roles:\n    - {user: " + watcher.Name + ", role: viewer}\n"})
	d.OpenToUsers()
	prod := daemontest.Project(t, map[string]string{
		"cortex.yaml": manifest("prod-y", pyAgent("web", "app:main", "")),
		"app.py":      "import time\ndef main():\n    time.sleep(600)\n",
	})
	d.MustCLI(prod, "run", "-d", ".")
	mine := filepath.Join(plain.Home, "mine")
	plain.Sh(t, plain.Home, "mkdir mine")
	for name, content := range map[string]string{
		"cortex.yaml": string(runtimestest.HostManifest(t, []byte(manifest("mine", pyAgent("job", "app:main", ""))))),
		"app.py":      "def main():\n    print('mine', flush=True)\n",
	} {
		if err := os.WriteFile(filepath.Join(mine, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		_ = os.Chown(filepath.Join(mine, name), plain.UID, plain.GID)
	}
	d.MustCLIAs(plain, mine, "run", ".")
	if got := listProjects(t, d.MustCLIAs(plain, "", "list", "-a", "--json")); strings.Join(got, ",") != "mine" {
		t.Errorf("a plain user lists %v, want only its own", got)
	}
	if r := d.CLIAs(plain, "", "inspect", "prod-y/web"); r.Code != 1 || !strings.Contains(r.Stderr, `project "prod-y" not found`) {
		t.Errorf("a plain user inspects root's agent: exit %d %q", r.Code, r.Stderr)
	}
	if r := d.CLIAs(plain, "", "stop", "prod-y"); r.Code != 1 || !strings.Contains(r.Stderr, `not found`) {
		t.Errorf("a plain user stops root's project: exit %d %q", r.Code, r.Stderr)
	}
	if got := listProjects(t, d.MustCLIAs(watcher, "", "list", "-a", "--json")); strings.Join(got, ",") != "mine,prod-y" {
		t.Errorf("the bound viewer lists %v", got)
	}
	if r := d.CLIAs(watcher, "", "kill", "prod-y/web"); r.Code != 1 || !strings.Contains(r.Stderr, "may not operate") {
		t.Errorf("the viewer kills: exit %d %q", r.Code, r.Stderr)
	}
	var who api.AuthWhoami
	daemontest.JSON(t, d.MustCLIAs(watcher, "", "auth", "whoami", "--json"), &who)
	if who.Identity != "uid:"+strconv.Itoa(watcher.UID) || len(who.Bindings) != 2 || who.Remote {
		t.Errorf("whoami: %+v", who)
	}
	if a, ok := d.Agent("prod-y", "web"); !ok || a.State != api.Running {
		t.Errorf("prod-y/web: %+v", a)
	}
	var es []api.AuditEntry
	daemontest.JSON(t, d.MustCLI("", "audit", "list", "--json", "--identity", "uid:"+strconv.Itoa(plain.UID)), &es)
	hidden := 0
	for _, e := range es {
		if e.API.Outcome == "hidden" && e.API.Project == "prod-y" {
			hidden++
		}
	}
	if hidden < 2 {
		t.Errorf("the plain user's hidden requests in the audit log: %d", hidden)
	}
}
