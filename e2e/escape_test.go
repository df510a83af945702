package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/daemon/daemontest"
	"github.com/cortexrt/cortex/internal/kerneltest"
	"github.com/cortexrt/cortex/internal/logs"
	"github.com/cortexrt/cortex/internal/runtimes/runtimestest"
	"github.com/cortexrt/cortex/internal/sandbox"
	"github.com/cortexrt/cortex/internal/seccomp"
)

// escapeAttempt is one way out of the sandbox that e2e/testdata/escape/
// attempts.py tries. Every attempt must fail, in the agent itself, from a
// shell and from python -c.
type escapeAttempt struct {
	name string
	// wall is what stops it first (docs/security.md lists the walls).
	wall string
	// want are the error codes that show that wall answered; nil accepts
	// any refusal (network attempts: the code changes with the gateway).
	want []string
}

var (
	fsRefused = []string{"EACCES", "EROFS"}
	eperm     = []string{"EPERM"}
)

var escapeAttempts = []escapeAttempt{
	// Reading host files outside the grants.
	{"read-etc-shadow", "filesystem", []string{"ENOENT"}},
	{"read-daemon-state", "filesystem", []string{"ENOENT"}},
	{"connect-daemon-api", "filesystem", []string{"ENOENT"}},
	{"read-sibling-host-dir", "filesystem", []string{"ENOENT"}},
	{"read-sibling-via-app", "filesystem", []string{"ENOENT"}},
	{"proc-init-root", "identity", []string{"EACCES"}},
	{"proc-init-environ", "identity", []string{"EACCES"}},
	{"proc-daemon-environ", "pid namespace", []string{"ENOENT"}},
	{"proc-sibling-root", "pid namespace", []string{"ENOENT"}},
	{"overwrite-init-exe", "identity", []string{"EACCES"}},
	{"write-proc-sys", "filesystem", fsRefused},
	// Writing without a write grant, and out of one.
	{"write-read-grant", "filesystem", fsRefused},
	{"create-in-read-grant", "filesystem", fsRefused},
	{"write-bundle", "filesystem", fsRefused},
	{"write-system-files", "filesystem", fsRefused},
	{"write-grant-dotdot", "filesystem", fsRefused},
	{"write-grant-symlink", "filesystem", []string{"ENOENT", "EACCES", "EROFS"}},
	{"write-grant-hardlink", "filesystem", []string{"EXDEV"}},
	{"rename-out-of-grant", "filesystem", []string{"EXDEV"}},
	{"plant-setuid-in-grant", "seccomp", eperm},
	{"file-capability-in-grant", "identity", eperm},
	{"mknod-char-device", "identity", eperm},
	{"mknod-block-device", "identity", eperm},
	// Mounts and cgroups.
	{"mount-tmpfs", "seccomp", eperm},
	{"umount-grant", "seccomp", eperm},
	{"new-mount-api", "seccomp", eperm},
	{"chroot", "seccomp", eperm},
	{"pivot-root", "seccomp", eperm},
	{"write-cgroup-files", "filesystem", []string{"ENOENT"}},
	// Namespaces, also through the x32 and i386 entry points.
	{"unshare", "seccomp", eperm},
	{"unshare-x32", "seccomp", eperm},
	{"setns", "seccomp", eperm},
	{"setns-x32", "seccomp", eperm},
	{"clone-newuser", "seccomp", eperm},
	{"int80-unshare", "seccomp", eperm}, // SIGSEGV, the kernel's wall, where i386 system calls are off (see TestEscape)
	{"unshare-tool", "seccomp", nil},
	{"nsenter-tool", "identity", nil},
	{"io-uring-setup", "seccomp", eperm},
	// Other processes.
	{"ptrace-init", "seccomp", eperm},
	{"ptrace-sibling", "seccomp", eperm},
	{"ptrace-own-child", "seccomp", eperm},
	{"process-vm-readv", "seccomp", eperm},
	{"kill-daemon", "pid namespace", []string{"ESRCH"}},
	{"kill-init", "identity", eperm},
	{"kill-sibling", "pid namespace", []string{"ESRCH"}},
	// Sockets the filter refuses.
	{"raw-socket", "seccomp", eperm},
	{"packet-socket", "seccomp", eperm},
	{"vsock-socket", "seccomp", eperm},
	{"netlink-admin-socket", "seccomp", eperm},
	// The network.
	{"connect-public-ip", "network", nil},
	{"connect-public-ipv6", "network", nil},
	{"connect-host-loopback", "network", nil},
	{"connect-host-ip", "network", nil},
	{"connect-host-abstract-socket", "network", []string{"ECONNREFUSED"}},
	{"connect-sibling-port", "network", nil},
	{"connect-sibling-abstract", "network", []string{"ECONNREFUSED"}},
	{"metadata-address", "network", nil},
	{"dns-unlisted-name", "network", nil},
	{"dns-tunnel", "network", nil},
	{"udp-public", "network", nil},
	{"udp-host", "network", nil},
	{"proxy-connect-unlisted", "network", nil},
	{"tls-sni-mismatch", "network", nil},
	{"http-host-mismatch", "network", nil},
	{"https-host-mismatch", "network", nil},
	{"private-resolving-name", "network", nil},
	{"gateway-listener-direct", "network", nil},
	{"synthetic-address-unissued", "network", nil},
	// Privileges.
	{"setuid-root", "identity", eperm},
	{"setuid-su", "identity", nil},
	{"setuid-mount-binary", "identity", nil},
	{"setuid-root-helper", "identity", []string{"EUID"}},
	// The kernel's other doors.
	{"keyring", "seccomp", eperm},
	{"bpf", "seccomp", eperm},
	{"perf-event-open", "seccomp", eperm},
	{"userfaultfd", "seccomp", eperm},
	{"kernel-module", "seccomp", eperm},
	{"open-by-handle", "seccomp", eperm},
	{"tiocsti", "seccomp", eperm},
	{"reboot", "seccomp", eperm},
	// Resources.
	{"fork-bomb", "cgroup", []string{"EAGAIN"}},
}

// escapeVias are the ways attacker.py runs attempts.py: in the agent
// process, from sh -c, and from python -c.
var escapeVias = []string{"direct", "sh", "python-c"}

// escapeChecks are the ordinary things attacker.py checks still work.
var escapeChecks = []string{
	"write-round-trip", "child-processes", "python-c-imports", "tmp-writable",
	"python-urllib-http-proxy", "python-urllib-https-proxy",
	"python-urllib-http-transparent", "python-urllib-https-transparent",
	"node-fetch-http", "node-fetch-https",
}

const (
	allowedName   = "allowed.test"     // in the attacker's network.access, pinned to 127.0.0.1 by egress.hosts
	unlistedName  = "not-allowed.test" // in nobody's network.access
	allowedBanner = "cortex-escape-allowed"
)

const escapePidsLimit = "64" // the attacker's pids_limit in testdata/escape/cortex.yaml

// attemptResult is one line attempts.py printed.
type attemptResult struct {
	Attempt, Via, Error, Detail string
	Escaped                     bool
	Ms                          int
}

// TestEscape is the sandbox escape suite: an attacker agent tries every
// way out in escapeAttempts (in itself, from sh -c and from python -c)
// while a sibling agent holds a secret, a port and an abstract socket and
// the host listens on loopback, its own address and an abstract socket.
// Every attempt must fail, nothing on the host or the sibling may notice
// anything, and the attacker, the sibling and the daemon keep running.
func TestEscape(t *testing.T) {
	// Where the kernel serves no i386 system calls it kills int $0x80 with
	// SIGSEGV before the seccomp filter sees it: a wall too.
	gate := kerneltest.I386(t)
	attempts := slices.Clone(escapeAttempts)
	for i, a := range attempts {
		if a.name == "int80-unshare" && !gate.Live {
			attempts[i].wall, attempts[i].want = "kernel (no ia32 system calls)", []string{"SIGSEGV"}
		}
	}
	host := listenHostTargets(t)
	allowed := startAllowedServers(t)
	cfg := daemontest.DefaultConfig + "egress:\n  hosts:\n    " + allowedName + ": 127.0.0.1\n"
	d := daemontest.Start(t, daemontest.Options{Config: cfg})
	privateName := privateResolvingName(t)
	dir := escapeProject(t, privateName, gate.Vector)
	mustWrite(t, filepath.Join(dir, "ro", "ca.pem"), string(allowed.caPEM), 0o644)
	d.MustCLI(dir, "run", "-d", ".")
	running := func(a api.AgentStatus) bool { return a.State == api.Running }
	attacker := d.WaitAgent("escape", "attacker", 60*time.Second, "running", running)
	victim := d.WaitAgent("escape", "victim", 60*time.Second, "running", running)
	waitRecord(t, d, "victim", "victim-ready", 60*time.Second)
	secret, err := os.ReadFile(filepath.Join(dir, "victim", "secret.txt"))
	if err != nil || len(secret) < 16 {
		t.Fatalf("victim secret: %q, %v", secret, err)
	}

	// Host-side fixtures, then the targets file the attacker waits for.
	fromHost := "written on the host " + strconv.FormatInt(time.Now().UnixNano(), 10)
	mustWrite(t, filepath.Join(dir, "rw", "from-host.txt"), fromHost, 0o644)
	mustWrite(t, filepath.Join(dir, "outside.txt"), "outside every grant\n", 0o644)
	suid := filepath.Join(dir, "ro", "suid-id")
	copyFile(t, "/usr/bin/id", suid)
	if err := os.Chmod(suid, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	roData, _ := os.ReadFile(filepath.Join(dir, "ro", "data.txt"))
	targets := map[string]any{
		"daemon_pid":         d.Pid(),
		"daemon_state":       filepath.Join(d.Root, "var", "lib", "cortex", "state.db"),
		"daemon_lib_dir":     filepath.Join(d.Root, "var", "lib", "cortex"),
		"daemon_socket":      filepath.Join(d.Root, "run", "cortex", "cortexd.sock"),
		"victim_dir_host":    filepath.Join(dir, "victim"),
		"victim_secret_host": filepath.Join(dir, "victim", "secret.txt"),
		"victim_init_pid":    victim.Pid,
		"victim_agent_pid":   agentPid(t, victim.Pid),
		"victim_port":        7070,
		"victim_abstract":    "cortex-escape-victim",
		"outside_file_host":  filepath.Join(dir, "outside.txt"),
		"attacker_cgroups":   d.CgroupDirs(),
		"host_tcp_port":      host.tcpPort,
		"host_udp_port":      host.udpPort,
		"host_ip":            host.ip,
		"host_abstract":      host.abstract,
		"unlisted_name":      unlistedName,
		"allowed_name":       allowedName,
		"allowed_http_port":  allowed.httpPort,
		"allowed_https_port": allowed.httpsPort,
		"allowed_banner":     allowedBanner,
		"ca_file":            "/app/ro/ca.pem",
		"private_name":       privateName,
		"suid_helper":        "/app/ro/suid-id",
	}
	tj, _ := json.Marshal(targets)
	mustWrite(t, filepath.Join(dir, "ro", ".targets.tmp"), string(tj), 0o644)
	if err := os.Rename(filepath.Join(dir, "ro", ".targets.tmp"), filepath.Join(dir, "ro", "targets.json")); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	recs := waitRecord(t, d, "attacker", "escape-suite-finished", 300*time.Second)
	t.Logf("attacker ran %d attempts x %d ways in %s", len(escapeAttempts), len(escapeVias), time.Since(started).Round(time.Millisecond))

	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range recs {
				if r.Stream != logs.StreamStdout && r.Message != "egress denied" {
					t.Logf("attacker %s: %s", r.Stream, r.Message)
				}
			}
		}
	})
	results := map[string]map[string]attemptResult{} // attempt -> via -> result
	done := map[string]int{}                         // via -> attempts it ran
	checks := map[string]logs.Record{}
	for _, r := range recs {
		switch r.Message {
		case "attempt":
			res := attemptResult{Attempt: str(r, "attempt"), Via: str(r, "via"), Error: str(r, "error"), Detail: str(r, "detail")}
			res.Escaped, _ = r.Fields["escaped"].(bool)
			res.Ms = num(r, "ms")
			if results[res.Attempt] == nil {
				results[res.Attempt] = map[string]attemptResult{}
			}
			results[res.Attempt][res.Via] = res
		case "attempts-done":
			done[str(r, "via")] = num(r, "attempts")
		case "check":
			checks[str(r, "check")] = r
		}
	}

	t.Run("Attempts", func(t *testing.T) {
		for _, a := range attempts {
			t.Run(a.name, func(t *testing.T) {
				for _, via := range escapeVias {
					res, ok := results[a.name][via]
					if ok {
						t.Logf("%-8s %-12s %5d ms  %s", via, res.Error, res.Ms, res.Detail)
					}
					switch {
					case !ok:
						t.Errorf("%s: no result: the attempt did not run", via)
					case res.Escaped:
						t.Errorf("%s: ESCAPED past the %s wall: %s", via, a.wall, res.Detail)
					case res.Error == "TIMEOUT":
						// Reported by FailFast; a refusal all the same.
					case a.want != nil && !slices.Contains(a.want, res.Error):
						t.Errorf("%s: refused with %s, want %s from the %s wall (another wall answered?): %s", via, res.Error, strings.Join(a.want, " or "), a.wall, res.Detail)
					}
				}
			})
		}
	})

	t.Run("AllAttemptsRan", func(t *testing.T) {
		known := map[string]bool{}
		for _, a := range escapeAttempts {
			known[a.name] = true
		}
		for name := range results {
			if !known[name] {
				t.Errorf("attempts.py ran %q, which escapeAttempts does not list", name)
			}
		}
		for _, via := range escapeVias {
			if done[via] != len(escapeAttempts) {
				t.Errorf("%s: attempts.py ran %d attempts, want %d", via, done[via], len(escapeAttempts))
			}
		}
		if len(escapeAttempts) < 30 {
			t.Errorf("only %d distinct attempts", len(escapeAttempts))
		}
	})

	// A refusal must be fast: a connection or lookup that hangs until a
	// timeout is a wall that drops instead of refusing.
	t.Run("FailFast", func(t *testing.T) {
		for _, a := range escapeAttempts {
			for _, via := range escapeVias {
				if res := results[a.name][via]; res.Error == "TIMEOUT" {
					t.Errorf("%s (%s) was not refused fast: it timed out after %d ms: %s", a.name, via, res.Ms, res.Detail)
				}
			}
		}
	})

	t.Run("Positive", func(t *testing.T) {
		for _, name := range escapeChecks {
			t.Run(name, func(t *testing.T) {
				r, ok := checks[name]
				if !ok {
					t.Fatalf("attacker.py never reported check %s", name)
				}
				if okv, _ := r.Fields["ok"].(bool); !okv {
					t.Errorf("check %s failed: %s", name, str(r, "detail"))
				}
			})
		}
		t.Run("write-round-trip-host", func(t *testing.T) {
			p := filepath.Join(dir, "rw", "from-agent.txt")
			got, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if want := reverse(fromHost); string(got) != want {
				t.Errorf("from-agent.txt = %q, want %q", got, want)
			}
			var st syscall.Stat_t
			if err := syscall.Stat(p, &st); err != nil {
				t.Fatal(err)
			}
			if int(st.Uid) != os.Getuid() || int(st.Gid) != os.Getgid() {
				t.Errorf("the agent's file is owned by %d:%d on the host, want the swarm's owner %d:%d", st.Uid, st.Gid, os.Getuid(), os.Getgid())
			}
		})
	})

	t.Run("AgentsKeepRunning", func(t *testing.T) {
		for _, before := range []api.AgentStatus{attacker, victim} {
			now, ok := d.Agent("escape", before.Agent)
			if !ok {
				t.Fatalf("%s is gone", before.Agent)
			}
			if now.State != api.Running || now.Pid != before.Pid || now.Restarts != 0 {
				t.Errorf("%s: %s pid %d restarts %d, want running pid %d restarts 0", before.Agent, now.State, now.Pid, now.Restarts, before.Pid)
			}
		}
	})

	t.Run("DaemonAlive", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Client.Ping(ctx); err != nil {
			t.Errorf("daemon does not answer: %v", err)
		}
		if err := syscall.Kill(d.Pid(), 0); err != nil {
			t.Errorf("daemon pid %d: %v", d.Pid(), err)
		}
	})

	t.Run("HostUntouched", func(t *testing.T) {
		if n := host.tcpHits.Load(); n != 0 {
			t.Errorf("the host's TCP listener accepted %d connections", n)
		}
		if n := host.udpHits.Load(); n != 0 {
			t.Errorf("the host's UDP listener received %d datagrams", n)
		}
		if n := host.unixHits.Load(); n != 0 {
			t.Errorf("the host's abstract socket accepted %d connections", n)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "outside.txt")); string(got) != "outside every grant\n" {
			t.Errorf("outside.txt changed: %q", got)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "ro", "data.txt")); !bytes.Equal(got, roData) {
			t.Errorf("ro/data.txt changed: %q", got)
		}
		if got := dirNames(t, dir); !slices.Equal(got, []string{"attacker.py", "attempts.py", "cortex.yaml", "fetch.js", "outside.txt", "ro", "rw", "victim", "victim.py"}) {
			t.Errorf("project directory holds %v: something was created outside the grants", got)
		}
		if got := dirNames(t, filepath.Join(dir, "ro")); !slices.Equal(got, []string{"ca.pem", "data.txt", "suid-id", "targets.json"}) {
			t.Errorf("read grant holds %v", got)
		}
		// Nothing the agent left in its write grant is a set-id program or
		// a device on the host.
		_ = filepath.WalkDir(filepath.Join(dir, "rw"), func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return nil
			}
			if fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 || fi.Mode()&os.ModeDevice != 0 {
				t.Errorf("the write grant holds %s with mode %s on the host", p, fi.Mode())
			}
			return nil
		})
		pidsMax := ""
		for _, cg := range d.CgroupDirs() {
			if strings.HasSuffix(cg, "/escape/attacker") {
				if b, err := os.ReadFile(filepath.Join(cg, "pids.max")); err == nil {
					pidsMax = strings.TrimSpace(string(b))
				}
			}
		}
		if pidsMax != escapePidsLimit {
			t.Errorf("attacker's pids.max on the host is %q, want %s", pidsMax, escapePidsLimit)
		}
	})

	// The allowed servers only ever see the allowed name: in the TLS SNI,
	// and in the Host of plain HTTP (inside TLS the gateway cannot see the
	// Host; https-host-mismatch shows such a request reaches only the
	// allowed server).
	t.Run("AllowedServersSeeOnlyTheAllowedName", func(t *testing.T) {
		reqs := allowed.requests()
		if len(reqs) == 0 {
			t.Fatalf("the allowed servers saw no request (the positive checks go through them)")
		}
		for _, r := range reqs {
			switch {
			case r.tls && r.sni != allowedName:
				t.Errorf("HTTPS request with SNI %q (Host %q) reached the allowed server", r.sni, r.host)
			case !r.tls && hostOnly(r.host) != allowedName:
				t.Errorf("HTTP request with Host %q reached the allowed server", r.host)
			}
		}
	})

	// The gateway reports what it refuses into the agent's log.
	t.Run("EgressRefusalsLogged", func(t *testing.T) {
		names := map[string]bool{}
		for _, r := range recs {
			if r.Stream == logs.StreamSystem && r.Message == "egress denied" {
				names[str(r, "name")] = true
			}
		}
		if !names[unlistedName] {
			t.Errorf("no 'egress denied' record names %s (denied names: %v)", unlistedName, names)
		}
	})

	t.Run("SiblingUntouched", func(t *testing.T) {
		for _, r := range readRecords(t, d, "victim") {
			if r.Message == "victim-contacted" {
				t.Errorf("the victim was reached: %v", r.Fields)
			}
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "victim", "secret.txt")); !bytes.Equal(got, secret) {
			t.Errorf("victim's secret changed")
		}
		for _, r := range recs {
			b, _ := json.Marshal(r)
			if bytes.Contains(b, secret) {
				t.Errorf("the attacker printed the victim's secret: %s", b)
			}
		}
	})
}

// hostTargets are listeners in the host's network namespace the attacker
// tries to reach; every hit is a failure.
type hostTargets struct {
	tcpPort, udpPort           int
	ip, abstract               string
	tcpHits, udpHits, unixHits atomic.Int64
}

func listenHostTargets(t *testing.T) *hostTargets {
	t.Helper()
	h := &hostTargets{abstract: fmt.Sprintf("cortex-escape-host-%d", os.Getpid())}
	tl, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	h.tcpPort = tl.Addr().(*net.TCPAddr).Port
	ul, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	h.udpPort = ul.LocalAddr().(*net.UDPAddr).Port
	al, err := net.Listen("unix", "@"+h.abstract)
	if err != nil {
		t.Fatal(err)
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
				h.ip = n.IP.String()
				break
			}
		}
	}
	var wg sync.WaitGroup
	accept := func(l net.Listener, hits *atomic.Int64) {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			hits.Add(1)
			_, _ = io.WriteString(c, "cortex-escape-host\n")
			c.Close()
		}
	}
	wg.Add(3)
	go accept(tl, &h.tcpHits)
	go accept(al, &h.unixHits)
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			_, from, err := ul.ReadFrom(buf)
			if err != nil {
				return
			}
			h.udpHits.Add(1)
			_, _ = ul.WriteTo([]byte("cortex-escape-host\n"), from)
		}
	}()
	t.Cleanup(func() {
		tl.Close()
		al.Close()
		ul.Close()
		wg.Wait()
	})
	return h
}

// allowedServers are the HTTP and HTTPS servers behind allowedName,
// with a test CA; they record every request they get.
type allowedServers struct {
	httpPort, httpsPort int
	caPEM               []byte

	mu   sync.Mutex
	seen []seenRequest
}

type seenRequest struct {
	tls       bool
	sni, host string
}

func (a *allowedServers) requests() []seenRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.seen)
}

func startAllowedServers(t *testing.T) *allowedServers {
	t.Helper()
	a := &allowedServers{}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cortex escape test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: allowedName}, DNSNames: []string{allowedName},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	a.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sr := seenRequest{host: r.Host}
		if r.TLS != nil {
			sr.tls, sr.sni = true, r.TLS.ServerName
		}
		a.mu.Lock()
		a.seen = append(a.seen, sr)
		a.mu.Unlock()
		fmt.Fprintf(w, "%s host=%s tls=%v\n", allowedBanner, r.Host, r.TLS != nil)
	})
	plain := httptest.NewServer(handler)
	t.Cleanup(plain.Close)
	secure := httptest.NewUnstartedServer(handler)
	secure.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}}}
	secure.StartTLS()
	t.Cleanup(secure.Close)
	a.httpPort = plain.Listener.Addr().(*net.TCPAddr).Port
	a.httpsPort = secure.Listener.Addr().(*net.TCPAddr).Port
	return a
}

// privateResolvingName is a name that the host resolves to a loopback or
// private address (its own hostname, on most machines), for the attacker's
// network.access: the gateway must still refuse to dial it. "" when the
// host has none.
func privateResolvingName(t *testing.T) string {
	t.Helper()
	name, err := os.Hostname()
	if err != nil || name == "" || name == "localhost" || strings.HasSuffix(name, ".localhost") {
		t.Logf("no hostname to use as a private-resolving name: %v", err)
		return ""
	}
	addrs, err := net.LookupHost(name)
	if err != nil || len(addrs) == 0 {
		t.Logf("hostname %q does not resolve (%v); private-resolving-name has nothing to try", name, err)
		return ""
	}
	for _, s := range addrs {
		ip := net.ParseIP(s)
		if ip == nil || !(ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified()) {
			t.Logf("hostname %q resolves to %s, not a private address; private-resolving-name has nothing to try", name, s)
			return ""
		}
	}
	return name
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// escapeProject copies testdata/escape into a fresh project directory,
// naming privateName in the attacker's network.access and giving it the
// i386 gate's vector (kerneltest.I386Gate: 0x81 simulates a kernel without
// i386 system calls).
func escapeProject(t *testing.T, privateName string, i386Vector int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "escape")
	src := filepath.Join("testdata", "escape")
	err := filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if e.IsDir() {
			if e.Name() == "__pycache__" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		copyFile(t, p, filepath.Join(dir, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := os.ReadFile(filepath.Join(dir, "cortex.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if privateName == "" {
		m = bytes.ReplaceAll(m, []byte(`, "{{private_name}}"`), nil)
	}
	m = bytes.ReplaceAll(m, []byte("{{private_name}}"), []byte(privateName))
	m = bytes.ReplaceAll(m, []byte("{{i386_vector}}"), []byte(strconv.Itoa(i386Vector)))
	m = runtimestest.HostManifest(t, m)
	mustWrite(t, filepath.Join(dir, "cortex.yaml"), string(m), 0o644)
	return dir
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, dst, string(b), 0o755)
}

func mustWrite(t *testing.T, p, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// agentPid is the host pid of the agent a sandbox init started.
func agentPid(t *testing.T, initPid int) int {
	t.Helper()
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", initPid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(s); err == nil {
				return pid
			}
		}
	}
	t.Fatalf("sandbox init %d has no child", initPid)
	return 0
}

func readRecords(t *testing.T, d *daemontest.Daemon, agent string) []logs.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []logs.Record
	err := d.Client.Logs(ctx, api.LogsQuery{Project: "escape", Agent: agent}, func(r logs.Record) error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatalf("logs of %s: %v", agent, err)
	}
	return out
}

// waitRecord waits until agent has logged a record with message msg and
// returns every record up to then.
func waitRecord(t *testing.T, d *daemontest.Daemon, agent, msg string, timeout time.Duration) []logs.Record {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		recs := readRecords(t, d, agent)
		for _, r := range recs {
			if r.Message == msg {
				return recs
			}
		}
		if time.Now().After(deadline) {
			var tail []string
			for _, r := range recs[max(0, len(recs)-20):] {
				tail = append(tail, r.Stream+": "+r.Message+" "+fmt.Sprint(r.Fields))
			}
			a, _ := d.Agent("escape", agent)
			t.Fatalf("%s never logged %q in %s (state %s %s); last records:\n%s", agent, msg, timeout, a.State, a.Reason, strings.Join(tail, "\n"))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func str(r logs.Record, key string) string {
	s, _ := r.Fields[key].(string)
	return s
}

// num reads a number field (json.Number in the daemon, float64 once
// decoded by the API client).
func num(r logs.Record, key string) int {
	switch v := r.Fields[key].(type) {
	case json.Number:
		n, _ := v.Int64()
		return int(n)
	case float64:
		return int(v)
	}
	return -1
}

func reverse(s string) string {
	r := []rune(s)
	slices.Reverse(r)
	return string(r)
}

// TestEscapeNestedGrantSymlink: an agent whose write grant holds the
// mount point of another of its grants replaces a directory on that path
// with a symlink to a host directory, then exits to be restarted. The
// daemon must not create, chown or bind anything through the link: the
// restart is refused and the host directory stays empty.
func TestEscapeNestedGrantSymlink(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	target := t.TempDir() // a host directory outside the project
	dir := daemontest.Project(t, map[string]string{
		"cortex.yaml": manifest("nest", pyAgent("nester", "nester:main",
			"    restart_policy: on-failure\n    max_restarts: 2\n"+
				"    env:\n      TARGET: "+target+"\n"+
				"    capabilities:\n      - filesystem.write: [./out, ./out/sub/evil.d]\n")),
		"nester.py": `import json, os, sys, time
def main():
    if os.environ["CORTEX_RUN"] == "0":
        os.rename("/app/out/sub", "/app/out/sub-old")
        os.symlink(os.environ["TARGET"], "/app/out/sub")
        print(json.dumps({"msg": "swapped"}), flush=True)
        sys.exit(1)
    try:
        with open("/app/out/sub/evil.d/planted", "w") as f:
            f.write("planted")
        print(json.dumps({"msg": "planted"}), flush=True)
    except OSError as e:
        print(json.dumps({"msg": "refused", "error": str(e)}), flush=True)
    time.sleep(3600)
`,
	})
	d.MustCLI(dir, "run", "-d", ".")
	a := d.WaitAgent("nest", "nester", 60*time.Second, "the restart refused (or running through the link)", func(a api.AgentStatus) bool {
		return (!a.State.Active() && !a.RestartPending) || (a.State == api.Running && a.Restarts > 0)
	})
	time.Sleep(200 * time.Millisecond) // a run that started may still be writing
	out := d.MustCLI("", "logs", "nest/nester")
	if !strings.Contains(out, "swapped") {
		t.Fatalf("the first run did not plant the link:\n%s", out)
	}
	if a.State != api.Failed || strings.Contains(out, "planted") {
		t.Errorf("restart through the link: %s/%s, want failed (the grant refused)\n%s", a.State, a.Reason, out)
	}
	// (max_restarts is 2: the start error of the last allowed restart
	// shows in the history only as RestartLimit.)
	refused := false
	for _, e := range inspect(t, d, "nest/nester").History {
		refused = refused || strings.Contains(e.Reason, "resolves outside the project directory")
	}
	if !refused {
		t.Errorf("the agent's history does not say why the restart was refused: %+v", inspect(t, d, "nest/nester").History)
	}
	if got := dirNames(t, target); len(got) != 0 {
		t.Errorf("the daemon created %v in %s, through the agent's link", got, target)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "out", "sub")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("out/sub on the host: %v %v (the link the test relies on)", fi, err)
	}
}

// TestSecurityDocSeccompTables keeps docs/security.md true to the code:
// every rule of the agent profile and of the set-id filter stacked on it
// is listed there, as seccomp.WriteMarkdown writes it.
func TestSecurityDocSeccompTables(t *testing.T) {
	root, err := daemontest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "security.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		name string
		docs []seccomp.RuleDoc
	}{
		{"seccomp.Rules()", seccomp.Rules()},
		{"sandbox.SetIDRules()", sandbox.SetIDProfile().Docs()},
	} {
		var b bytes.Buffer
		if err := seccomp.WriteMarkdown(&b, p.docs); err != nil {
			t.Fatal(err)
		}
		for _, row := range strings.Split(strings.TrimSpace(b.String()), "\n") {
			if !bytes.Contains(doc, []byte(row)) {
				t.Errorf("docs/security.md lacks this row of %s:\n%s", p.name, row)
			}
		}
	}
}
