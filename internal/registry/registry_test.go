package registry_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/oci/ocitest"
	"github.com/cortexrt/cortex/internal/registry"
)

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestPrepareLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "reg")
	s, err := registry.Prepare(registry.Options{Dir: dir, Addr: ":5000", Hostnames: []string{"reg.example.com", "10.0.0.5"}})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{
		dir: 0o700, s.ConfigPath: 0o600, s.HtpasswdPath: 0o600, s.KeyPath: 0o600,
		filepath.Join(dir, "tls", "ca.key"): 0o600, filepath.Join(dir, "http-secret"): 0o600, s.StorageDir: 0o700,
	} {
		if got := mode(t, p); got != want {
			t.Errorf("%s: mode %o, want %o", p, got, want)
		}
	}
	cfg, _ := os.ReadFile(s.ConfigPath)
	for _, want := range []string{"tls:", "certificate: \"" + s.CertPath, "htpasswd:", "path: \"" + s.HtpasswdPath, "rootdirectory: \"" + s.StorageDir, "addr: \":5000\""} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("config.yml lacks %q:\n%s", want, cfg)
		}
	}
	// The server certificate chains to the CA for every name.
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(s.CAPath)
	pool.AppendCertsFromPEM(ca)
	leaf := readCert(t, s.CertPath)
	for _, n := range []string{"reg.example.com", "10.0.0.5"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: n}); err != nil {
			t.Errorf("certificate for %s: %v", n, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "other.example.com"}); err == nil {
		t.Error("certificate valid for a name it should not cover")
	}

	// Preparing again keeps the CA and the certificate; a new name
	// reissues the certificate under the same CA.
	s2, err := registry.Prepare(registry.Options{Dir: dir, Addr: ":5000", Hostnames: []string{"reg.example.com", "10.0.0.5"}})
	if err != nil {
		t.Fatal(err)
	}
	if !readCert(t, s2.CertPath).Equal(leaf) {
		t.Error("an unchanged site got a new certificate")
	}
	s3, err := registry.Prepare(registry.Options{Dir: dir, Addr: ":5000", Hostnames: []string{"reg2.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	ca3, _ := os.ReadFile(s3.CAPath)
	if string(ca3) != string(ca) {
		t.Error("the CA changed")
	}
	if _, err := readCert(t, s3.CertPath).Verify(x509.VerifyOptions{Roots: pool, DNSName: "reg2.example.com"}); err != nil {
		t.Errorf("reissued certificate: %v", err)
	}
}

func readCert(t *testing.T, p string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPrepareRefuses(t *testing.T) {
	tests := []struct {
		name string
		opts registry.Options
		want string
	}{
		{"insecure on all addresses", registry.Options{Addr: ":5000", Insecure: true}, "loopback"},
		{"insecure on a LAN address", registry.Options{Addr: "10.0.0.5:5000", Insecure: true}, "loopback"},
		{"no port", registry.Options{Addr: "localhost"}, "not host:port"},
		{"cert without key", registry.Options{Addr: ":5000", CertFile: "/x.crt"}, "go together"},
		{"missing cert", registry.Options{Addr: ":5000", CertFile: "/nonexistent.crt", KeyFile: "/nonexistent.key"}, "TLS file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Dir = filepath.Join(t.TempDir(), "reg")
			_, err := registry.Prepare(tc.opts)
			if err == nil || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Prepare(%+v) = %v, want invalid argument containing %q", tc.opts, err, tc.want)
			}
		})
	}
	s, err := registry.Prepare(registry.Options{Dir: filepath.Join(t.TempDir(), "dev"), Addr: "127.0.0.1:5000", Insecure: true})
	if err != nil {
		t.Fatalf("insecure on loopback: %v", err)
	}
	cfg, _ := os.ReadFile(s.ConfigPath)
	if strings.Contains(string(cfg), "tls:") || strings.Contains(string(cfg), "auth:") {
		t.Errorf("insecure config has tls or auth:\n%s", cfg)
	}
	if err := s.SetUser("a", "b"); err == nil {
		t.Error("user added to an insecure registry")
	}
}

func TestUsers(t *testing.T) {
	s, err := registry.Prepare(registry.Options{Dir: filepath.Join(t.TempDir(), "reg"), Addr: "127.0.0.1:5000", Hostnames: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetUser("ci", "first-password"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUser("alice", "alice-password"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUser("ci", "second-password"); err != nil {
		t.Fatal(err)
	}
	users, _ := s.Users()
	if strings.Join(users, ",") != "alice,ci" {
		t.Errorf("users %v", users)
	}
	if s.CheckPassword("ci", "first-password") || !s.CheckPassword("ci", "second-password") || !s.CheckPassword("alice", "alice-password") {
		t.Error("passwords not as set")
	}
	data, _ := os.ReadFile(s.HtpasswdPath)
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if _, h, _ := strings.Cut(l, ":"); !strings.HasPrefix(h, "$2a$10$") {
			t.Errorf("htpasswd line %q is not bcrypt", l)
		}
	}
	for _, bad := range []string{"", "a:b", "a b", "x\ny"} {
		if err := s.SetUser(bad, "pw"); !errdefs.IsInvalidArgument(err) {
			t.Errorf("SetUser(%q) = %v", bad, err)
		}
	}
	if err := s.SetUser("ok", ""); !errdefs.IsInvalidArgument(err) {
		t.Errorf("empty password: %v", err)
	}
	if err := s.SetUser("ok", strings.Repeat("x", 73)); !errdefs.IsInvalidArgument(err) {
		t.Errorf("73-byte password: %v", err)
	}
}

// TestServesTLSWithAuth runs the real registry: TLS with the generated CA,
// 401 without credentials, 200 with an htpasswd user's.
func TestServesTLSWithAuth(t *testing.T) {
	reg := ocitest.Start(t, ocitest.Options{Secure: true, Users: map[string]string{"ci": "ci-password-1"}})
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(reg.CAPath)
	pool.AppendCertsFromPEM(ca)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(user, pass string) int {
		req, _ := http.NewRequest("GET", "https://"+reg.Host+"/v2/", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("", ""); code != http.StatusUnauthorized {
		t.Errorf("anonymous: %d", code)
	}
	if code := get("ci", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong password: %d", code)
	}
	if code := get("ci", "ci-password-1"); code != http.StatusOK {
		t.Errorf("ci: %d", code)
	}
	// A user added while it runs is accepted without a restart.
	if err := reg.SetUser("late", "late-password"); err != nil {
		t.Fatal(err)
	}
	if code := get("late", "late-password"); code != http.StatusOK {
		t.Errorf("user added while running: %d", code)
	}
}

func TestSystemdUnit(t *testing.T) {
	s, err := registry.Prepare(registry.Options{Dir: filepath.Join(t.TempDir(), "reg"), Addr: ":5000", Hostnames: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	u := s.SystemdUnit("/usr/bin/docker-registry")
	for _, want := range []string{"ExecStart=/usr/bin/docker-registry serve " + s.ConfigPath, "ReadWritePaths=" + s.Dir, "NoNewPrivileges=yes", "WantedBy=multi-user.target"} {
		if !strings.Contains(u, want) {
			t.Errorf("unit lacks %q:\n%s", want, u)
		}
	}
}
