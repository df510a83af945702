// Package ocitest runs the real CNCF distribution registry (Debian's
// docker-registry) for tests, through internal/registry, as cortex-ops
// registry does. Without the binary a test skips (fails under
// CORTEX_TEST_PRIVILEGED=1: scripts/deps.sh installs it).
package ocitest

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/kerneltest"
	"github.com/cortexrt/cortex/internal/registry"
)

// Options configure a test registry.
type Options struct {
	// Host is the address to listen on (default 127.0.0.1).
	Host string
	// Secure sets up TLS (a generated CA) and htpasswd auth; otherwise
	// plain HTTP without auth, which internal/registry allows on loopback
	// only.
	Secure bool
	// Users (name -> password) are added to htpasswd (Secure only).
	Users map[string]string
}

// Registry is a running test registry.
type Registry struct {
	*registry.Site
	// Host is host:port as clients name it.
	Host string
	proc *registry.Process
}

// Start runs a registry until the test ends.
func Start(t testing.TB, opts Options) *Registry {
	t.Helper()
	bin, err := registry.FindBinary()
	if err != nil {
		kerneltest.Missing(t, err.Error())
	}
	host := opts.Host
	if host == "" {
		host = "127.0.0.1"
	}
	dir := t.TempDir()
	var site *registry.Site
	var proc *registry.Process
	// A free port can be taken between choosing and binding; retry then.
	for attempt := 0; ; attempt++ {
		port, err := freePort(host)
		if err != nil {
			t.Fatalf("free port on %s: %v", host, err)
		}
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		site, err = registry.Prepare(registry.Options{
			Dir:       filepath.Join(dir, "registry"),
			Addr:      addr,
			Hostnames: []string{host, "localhost"},
			Insecure:  !opts.Secure,
		})
		if err != nil {
			t.Fatalf("prepare registry: %v", err)
		}
		for u, p := range opts.Users {
			if err := site.SetUser(u, p); err != nil {
				t.Fatal(err)
			}
		}
		log, err := os.Create(filepath.Join(dir, "registry.log"))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		proc, err = site.Start(ctx, bin, log)
		cancel()
		log.Close()
		if err == nil {
			break
		}
		if attempt == 2 {
			out, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			t.Fatalf("start registry: %v\n%s", err, out)
		}
	}
	r := &Registry{Site: site, Host: site.Addr, proc: proc}
	t.Cleanup(func() { proc.Stop(5 * time.Second) })
	return r
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// BlobPath is where the registry stores the blob with digest
// ("sha256:<hex>") on disk.
func (r *Registry) BlobPath(digest string) string {
	hex := digest[len("sha256:"):]
	return filepath.Join(r.StorageDir, "docker", "registry", "v2", "blobs", "sha256", hex[:2], hex, "data")
}

// Tamper flips one byte of the stored blob, keeping its size.
func (r *Registry) Tamper(t testing.TB, digest string) {
	t.Helper()
	p := r.BlobPath(digest)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("tamper: %v", err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
