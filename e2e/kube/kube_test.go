// Package kube holds the end-to-end tests of Cortex on Kubernetes: they
// build kube-apiserver from the pinned k8s.io/kubernetes (cached under
// $HOME/.cache/cortex-test), run it against etcd from Debian's
// etcd-server, and apply what cortex renders with cortex deploy. It is
// its own module so the main module never depends on Kubernetes.
//
// What is tested is the API server's acceptance: validation (strict field
// validation included), defaulting and admission (Pod Security
// "restricted" among them) accept every rendered object, and a second
// deploy changes nothing. No kubelet runs here, so no pod starts.
package kube

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// privileged mirrors internal/kerneltest: under CORTEX_TEST_PRIVILEGED=1
// a missing requirement fails the test instead of skipping it.
func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CORTEX_TEST_PRIVILEGED") == "1" {
		t.Fatalf("required by CORTEX_TEST_PRIVILEGED=1 but missing: %s", why)
	}
	t.Skipf("skipping: %s", why)
}

// repoRoot is the main module's directory (two levels up).
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

var (
	buildOnce         sync.Once
	cortexBin, kasBin string
	buildErr          error
	buildDir          string
)

// binaries builds cortex (into a temporary directory) and kube-apiserver
// (into the cache, once per Kubernetes version: the first build takes
// about 25 minutes on two cores, later ones reuse it).
func binaries(t testing.TB) (string, string) {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "cortex-kube-e2e-")
		if buildErr != nil {
			return
		}
		cortexBin = filepath.Join(buildDir, "cortex")
		cmd := exec.Command("go", "build", "-o", cortexBin, "./cmd/cortex")
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build cortex: %v\n%s", err, out)
			return
		}
		kasBin, buildErr = kubeAPIServer()
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return cortexBin, kasBin
}

// kubeAPIServer returns the cached kube-apiserver of this module's
// Kubernetes version, building it first when missing.
func kubeAPIServer() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "k8s.io/kubernetes").Output()
	if err != nil {
		return "", fmt.Errorf("go list k8s.io/kubernetes: %v", err)
	}
	version := strings.TrimSpace(string(out))
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	bin := filepath.Join(cache, "cortex-test", "kube-apiserver-"+version)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	tmp := bin + ".tmp"
	start := time.Now()
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-X k8s.io/component-base/version.gitVersion="+version, "-o", tmp, "k8s.io/kubernetes/cmd/kube-apiserver")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build kube-apiserver %s: %v\n%s", version, err, b)
	}
	fmt.Fprintf(os.Stderr, "built kube-apiserver %s in %s\n", version, time.Since(start).Round(time.Second))
	return bin, os.Rename(tmp, bin)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// pki is a CA with the server and client certificates the API server
// and the test's kubeconfig use.
type pki struct {
	caPEM, serverCert, serverKey, clientCert, clientKey []byte
}

func newPKI(t testing.TB) pki {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e-ca"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(n int64, tmpl *x509.Certificate) ([]byte, []byte) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl.SerialNumber = big.NewInt(n)
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, _ := x509.MarshalECPrivateKey(k)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
	}
	var p pki
	p.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	p.serverCert, p.serverKey = issue(2, &x509.Certificate{Subject: pkix.Name{CommonName: "kube-apiserver"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	p.clientCert, p.clientKey = issue(3, &x509.Certificate{Subject: pkix.Name{CommonName: "e2e-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return p
}

// cluster is a running etcd + kube-apiserver.
type cluster struct {
	dir, server, kubeconfig string
	client                  *http.Client
}

func write(t testing.TB, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startProcess runs a long-lived child whose output goes to a log file,
// stopped (SIGTERM, then SIGKILL) when the test ends.
func startProcess(t testing.TB, dir, name string, argv ...string) <-chan struct{} {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
	})
	return done
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		missing(t, "etcd not installed (scripts/deps.sh installs Debian's etcd-server)")
	}
	_, kas := binaries(t)
	dir := t.TempDir()
	etcdPort, peerPort, kasPort := freePort(t), freePort(t), freePort(t)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	etcdDone := startProcess(t, dir, "etcd", etcd, "--data-dir", filepath.Join(dir, "etcd"), "--name", "e2e",
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-cluster", fmt.Sprintf("e2e=http://127.0.0.1:%d", peerPort),
		"--unsafe-no-fsync", "--log-level", "warn")
	waitHTTP(t, dir, "etcd", etcdDone, &http.Client{Timeout: time.Second}, etcdURL+"/health", 30*time.Second)

	p := newPKI(t)
	sa, _ := rsa.GenerateKey(rand.Reader, 2048)
	saDER, _ := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	saPriv := x509.MarshalPKCS1PrivateKey(sa)
	f := func(name string, b []byte) string { return write(t, filepath.Join(dir, name), b) }
	kasDone := startProcess(t, dir, "kube-apiserver", kas,
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", strconv.Itoa(kasPort),
		"--tls-cert-file", f("server.crt", p.serverCert), "--tls-private-key-file", f("server.key", p.serverKey),
		"--client-ca-file", f("ca.crt", p.caPEM),
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", f("sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saDER})),
		"--service-account-signing-key-file", f("sa.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: saPriv})),
		"--service-cluster-ip-range", "10.96.0.0/16",
		"--authorization-mode", "RBAC",
		// No kubelet, no controllers: the loopback address need not be
		// published as the kubernetes Service's endpoint.
		"--endpoint-reconciler-type", "none",
		"--cert-dir", filepath.Join(dir, "certs"))
	pair, err := tls.X509KeyPair(p.clientCert, p.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.caPEM)
	c := &cluster{dir: dir, server: fmt.Sprintf("https://127.0.0.1:%d", kasPort)}
	c.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}}
	waitHTTP(t, dir, "kube-apiserver", kasDone, c.client, c.server+"/readyz", 120*time.Second)
	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: e2e
  context: {cluster: e2e, user: admin}
- name: other
  context: {cluster: e2e, user: nobody}
current-context: other
preferences: {}
`, c.server, b64(p.caPEM), b64(p.clientCert), b64(p.clientKey))
	c.kubeconfig = write(t, filepath.Join(dir, "kubeconfig"), []byte(kc))
	return c
}

func waitHTTP(t testing.TB, dir, name string, exited <-chan struct{}, c *http.Client, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			last = "it exited"
			deadline = time.Now()
			continue
		default:
		}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(dir, name+".log"))
	if len(log) > 4000 {
		log = log[len(log)-4000:]
	}
	t.Fatalf("%s not ready after %s (%s); log tail:\n%s", name, timeout, last, log)
}

// cortex runs the CLI and returns stdout, stderr and the exit code.
func cortex(t testing.TB, dir string, args ...string) (string, string, int) {
	t.Helper()
	bin, _ := binaries(t)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// get fetches an API path as JSON.
func (c *cluster) get(t testing.TB, path string) (int, []byte) {
	t.Helper()
	resp, err := c.client.Get(c.server + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.Bytes()
}

// apply server-side applies a JSON or YAML object as the test itself
// (field manager e2e), for what the Helm chart would create.
func (c *cluster) apply(t testing.TB, path string, body []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPatch, c.server+path+"?fieldManager=e2e&force=true&fieldValidation=Strict", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/apply-patch+yaml")
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		t.Fatalf("apply %s: %s\n%s", path, resp.Status, b.String())
	}
}
