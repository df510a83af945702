package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/daemon/daemontest"
	"github.com/cortexrt/cortex/internal/oci/ocitest"
)

// helloBundle packs examples/hello with the CLI.
func helloBundle(t *testing.T, d *daemontest.Daemon) string {
	t.Helper()
	root, _ := daemontest.ModuleRoot()
	out := filepath.Join(t.TempDir(), "hello.cortex")
	d.MustCLI(root, "bundle", "--config", "examples/hello/cortex.yaml", "--output", out)
	return out
}

// runHello runs ref (a registry reference) attached and checks the agent
// greeted, then removes the project for the next run.
func runHello(t *testing.T, d *daemontest.Daemon, args ...string) {
	t.Helper()
	r := d.CLI(t.TempDir(), append([]string{"run"}, args...)...)
	if r.Code != 0 || !strings.Contains(r.Stdout, "hello from greeter") {
		t.Fatalf("cortex run %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.Code, r.Stdout, r.Stderr)
	}
	d.MustCLI("", "rm", "hello")
}

// refused runs a command that must fail, leaving no project behind.
func refused(t *testing.T, d *daemontest.Daemon, want string, args ...string) {
	t.Helper()
	r := d.CLI(t.TempDir(), args...)
	if r.Code == 0 || !strings.Contains(r.Stderr, want) {
		t.Fatalf("cortex %v: exit %d, want a failure mentioning %q\nstdout:\n%s\nstderr:\n%s", args, r.Code, want, r.Stdout, r.Stderr)
	}
	if ps, _ := d.Client.Projects(context.Background()); len(ps) != 0 {
		t.Fatalf("a refused run left projects: %+v", ps)
	}
}

// TestRegistryRoundTrip: push a bundle to the real distribution registry,
// pull it, and run it by tag and by digest through a real daemon; a
// signature is required with --verify-key; a tampered blob never runs.
func TestRegistryRoundTrip(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	reg := ocitest.Start(t, ocitest.Options{})
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	port := reg.Host[strings.LastIndex(reg.Host, ":")+1:]
	repo := "localhost:" + port + "/demo/hello"
	file := helloBundle(t, d)

	digest := strings.TrimSpace(d.MustCLI("", "push", "-q", file, repo+":v1"))
	if !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("push -q printed %q", digest)
	}
	pulled := filepath.Join(t.TempDir(), "pulled.cortex")
	out := d.MustCLI("", "pull", repo+":v1", "-o", pulled)
	want, _ := os.ReadFile(file)
	got, _ := os.ReadFile(pulled)
	if string(got) != string(want) || !strings.Contains(out, digest) {
		t.Fatalf("pulled file differs from the pushed one (%d vs %d bytes); output %q", len(got), len(want), out)
	}

	t.Run("run by tag", func(t *testing.T) { runHello(t, d, repo+":v1") })
	t.Run("run by digest", func(t *testing.T) { runHello(t, d, "127.0.0.1:"+port+"/demo/hello@"+digest) })
	t.Run("oci scheme", func(t *testing.T) { runHello(t, d, "oci://"+repo+":v1") })

	t.Run("signatures", func(t *testing.T) {
		keys := t.TempDir()
		signer, other := filepath.Join(keys, "signer"), filepath.Join(keys, "other")
		d.MustCLI("", "key", "generate", signer)
		d.MustCLI("", "key", "generate", other)
		if fi, err := os.Stat(signer); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("private key mode: %v %v", fi.Mode(), err)
		}
		// A different bundle (so the v1 manifest stays unsigned).
		root, _ := daemontest.ModuleRoot()
		proj := filepath.Join(t.TempDir(), "hello")
		copyTree(t, filepath.Join(root, "examples", "hello"), proj)
		_ = os.WriteFile(filepath.Join(proj, "NOTES"), []byte("signed copy\n"), 0o644)
		signedFile := filepath.Join(t.TempDir(), "signed.cortex")
		d.MustCLI("", "bundle", "--config", filepath.Join(proj, "cortex.yaml"), "--output", signedFile)
		d.MustCLI("", "push", "--sign", signer, signedFile, repo+":signed")

		runHello(t, d, "--verify-key", signer+".pub", repo+":signed")
		refused(t, d, "none valid by key", "run", "--verify-key", other+".pub", repo+":signed")
		refused(t, d, "is not signed", "run", "--verify-key", signer+".pub", repo+":v1")
		refused(t, d, "not a registry reference", "run", "--verify-key", signer+".pub", file)
	})

	t.Run("tampered blob refused", func(t *testing.T) {
		layer := sha256File(t, file)
		reg.Tamper(t, layer)
		refused(t, d, "does not match its digest", "run", repo+"@"+digest)
		refused(t, d, "does not match its digest", "run", repo+":v1")
		if _, err := os.Stat(filepath.Join(d.Root, "var", "lib", "cortex", "bundles")); err == nil {
			ents, _ := os.ReadDir(filepath.Join(d.Root, "var", "lib", "cortex", "bundles"))
			// Only the runs above unpacked bundles (the same digest).
			if len(ents) > 2 {
				t.Errorf("bundles after the refused runs: %v", ents)
			}
		}
	})
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("sha256sum", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	return "sha256:" + strings.Fields(string(out))[0]
}

// TestRegistryTLSAuth: cortex-ops registry on a non-localhost address
// (127.0.0.2: TLS required) with an htpasswd user; the CLI authenticates
// with ~/.docker/config.json (DOCKER_CONFIG) and trusts the generated CA.
func TestRegistryTLSAuth(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	if _, err := exec.LookPath("docker-registry"); err != nil {
		ocitest.Start(t, ocitest.Options{}) // skips (or fails in CI) with the reason
	}
	dir := filepath.Join(t.TempDir(), "registry")
	addr := "127.0.0.2:" + freePortOn(t, "127.0.0.2")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, filepath.Join(d.Bin, "cortex-ops"), "registry", "--addr", addr, "--dir", dir,
		"--hostname", "127.0.0.2", "--user", "alice", "--password-stdin")
	cmd.Env = d.Env()
	cmd.Stdin = strings.NewReader("alice-password-1\n")
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := cmd.Wait(); err != nil && ctx.Err() == nil {
			t.Errorf("cortex-ops registry: %v", err)
		}
	})
	sc := bufio.NewScanner(stdout)
	var banner []string
	for sc.Scan() {
		banner = append(banner, sc.Text())
		if strings.HasPrefix(sc.Text(), "users:") {
			break
		}
	}
	if len(banner) == 0 || !strings.HasPrefix(banner[0], "registry ready on https://"+addr) {
		t.Fatalf("cortex-ops registry printed %q\nstderr:\n%s", banner, stderr.String())
	}
	go func() {
		for sc.Scan() {
		}
	}()

	t.Setenv("SSL_CERT_FILE", filepath.Join(dir, "tls", "ca.crt"))
	cfgDir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("alice:alice-password-1"))
	if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(`{"auths":{"`+addr+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	file := helloBundle(t, d)
	ref := addr + "/site/hello:v1"

	t.Setenv("DOCKER_CONFIG", t.TempDir())
	refused(t, d, "log in", "push", file, ref)

	t.Setenv("DOCKER_CONFIG", cfgDir)
	digest := strings.TrimSpace(d.MustCLI("", "push", "-q", file, ref))
	runHello(t, d, ref)
	runHello(t, d, addr+"/site/hello@"+digest)
}

func freePortOn(t *testing.T, host string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}
