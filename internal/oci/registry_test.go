package oci

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"

	"github.com/cortexrt/cortex/internal/bundle"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/oci/ocitest"
)

// makeBundle packs a small project and returns the .cortex path.
func makeBundle(t *testing.T, greeting string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"cortex.yaml":        "version: \"1\"\nproject: ocitest\nagents:\n  - name: a\n    runtime: python3.11\n    entrypoint: agents.a:main\n",
		"agents/__init__.py": "",
		"agents/a.py":        "def main():\n    print(" + `"` + greeting + `"` + ")\n",
	}
	for p, c := range files {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "b.cortex")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := bundle.Create(context.Background(), f, bundle.CreateOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	return out
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	p, _, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParsePrivateKey("k", p)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// emptyCreds is a credential store with nothing in it, so tests never read
// the user's Docker configuration.
func emptyCreds(t *testing.T) *Client {
	t.Helper()
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	return &Client{CertsDir: t.TempDir()}
}

func mustSame(t *testing.T, a, b string) {
	t.Helper()
	x, _ := os.ReadFile(a)
	y, _ := os.ReadFile(b)
	if len(x) == 0 || !bytes.Equal(x, y) {
		t.Fatalf("%s and %s differ (%d vs %d bytes)", a, b, len(x), len(y))
	}
}

func TestPushPullRoundTrip(t *testing.T) {
	reg := ocitest.Start(t, ocitest.Options{})
	c := emptyCreds(t)
	ctx := context.Background()
	file := makeBundle(t, "hi")
	ref := "localhost:" + strings.Split(reg.Host, ":")[1] + "/team/swarm:v1"

	res, err := c.Push(ctx, file, ref, PushOptions{Project: "ocitest"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Push(ctx, file, strings.Replace(ref, ":v1", ":v2", 1), PushOptions{Project: "ocitest"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Digest != again.Manifest.Digest {
		t.Errorf("the same bundle pushed twice gave manifests %s and %s; want one digest", res.Manifest.Digest, again.Manifest.Digest)
	}
	if a, err := Describe(ctx, file, "ocitest"); err != nil || a.Desc.Digest != res.Manifest.Digest {
		t.Errorf("Describe (offline) gives %v, %v; the push %s", a.Desc.Digest, err, res.Manifest.Digest)
	}
	b, _ := bundle.Open(file)
	want := b.Index().Digest
	b.Close()
	if res.BundleDigest != want {
		t.Errorf("bundle digest %s, want %s", res.BundleDigest, want)
	}

	dir := t.TempDir()
	for _, tc := range []struct{ name, ref string }{
		{"by tag", ref},
		{"by digest", reg.Host + "/team/swarm@" + res.Manifest.Digest.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".cortex")
			got, err := c.Pull(ctx, tc.ref, dest, PullOptions{})
			if err != nil {
				t.Fatal(err)
			}
			mustSame(t, file, dest)
			if got.Manifest.Digest != res.Manifest.Digest || got.BundleDigest != want || got.Project != "ocitest" {
				t.Errorf("pull result %+v", got)
			}
		})
	}
	t.Run("unknown digest", func(t *testing.T) {
		_, err := c.Pull(ctx, reg.Host+"/team/swarm@sha256:"+strings.Repeat("ab", 32), filepath.Join(dir, "x.cortex"), PullOptions{})
		if !errdefs.IsNotFound(err) {
			t.Fatalf("pull of an unknown digest: %v (category %s), want not found", err, errdefs.CategoryOf(err))
		}
	})
	t.Run("not a bundle", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "x.txt")
		_ = os.WriteFile(f, []byte("hello"), 0o644)
		if _, err := c.Push(ctx, f, ref, PushOptions{}); err == nil || !errdefs.IsInvalidArgument(err) {
			t.Fatalf("push of a non-bundle: %v", err)
		}
	})
}

func TestPullRefusesOtherArtifacts(t *testing.T) {
	reg := ocitest.Start(t, ocitest.Options{})
	c := emptyCreds(t)
	ctx := context.Background()
	r, _ := ParseReference(reg.Host + "/other:v1")
	repo, err := c.repository(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("not a bundle")
	layer := content.NewDescriptorFromBytes("application/vnd.example.thing", data)
	if err := repo.Push(ctx, layer, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	man, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "application/vnd.example.thing.v1", oras.PackManifestOptions{Layers: []ocispec.Descriptor{layer}})
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Tag(ctx, man, "v1"); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "x.cortex")
	_, err = c.Pull(ctx, r.String(), dest, PullOptions{})
	if err == nil || !strings.Contains(err.Error(), "is not a Cortex bundle") {
		t.Fatalf("pull of another artifact type: %v", err)
	}
	if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dest written: %v", err)
	}
}

// TestTamperedRefused: a blob changed in the registry's storage is never
// handed out, whether it is the bundle layer or the manifest itself.
func TestTamperedRefused(t *testing.T) {
	reg := ocitest.Start(t, ocitest.Options{})
	c := emptyCreds(t)
	ctx := context.Background()
	file := makeBundle(t, "tamper")
	ref := reg.Host + "/swarm:v1"
	res, err := c.Push(ctx, file, ref, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	layer, _ := describeFile(file)
	dir := t.TempDir()

	t.Run("manifest, pulled by digest", func(t *testing.T) {
		// The manifest is a blob too; change a byte of it (inside the
		// created annotation's value, so it stays JSON).
		p := reg.BlobPath(res.Manifest.Digest.String())
		orig, _ := os.ReadFile(p)
		changed := bytes.Replace(orig, []byte("2000-01-01"), []byte("2000-01-02"), 1)
		if bytes.Equal(orig, changed) {
			t.Fatal("created annotation not found in the stored manifest")
		}
		_ = os.WriteFile(p, changed, 0o644)
		defer os.WriteFile(p, orig, 0o644)
		_, err := c.Pull(ctx, reg.Host+"/swarm@"+res.Manifest.Digest.String(), filepath.Join(dir, "m.cortex"), PullOptions{})
		if err == nil || !strings.Contains(err.Error(), "refusing it") {
			t.Fatalf("pull of a tampered manifest: %v", err)
		}
	})
	t.Run("bundle layer", func(t *testing.T) {
		reg.Tamper(t, layer.Digest.String())
		dest := filepath.Join(dir, "l.cortex")
		for _, r := range []string{ref, reg.Host + "/swarm@" + res.Manifest.Digest.String()} {
			_, err := c.Pull(ctx, r, dest, PullOptions{})
			if err == nil || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "does not match its digest") {
				t.Fatalf("pull %s of a tampered layer: %v", r, err)
			}
		}
		ents, _ := os.ReadDir(dir)
		if len(ents) != 0 {
			t.Errorf("a refused pull left files: %v", ents)
		}
	})
}

func TestSignatures(t *testing.T) {
	reg := ocitest.Start(t, ocitest.Options{})
	c := emptyCreds(t)
	ctx := context.Background()
	signer, stranger := newKey(t), newKey(t)
	dir := t.TempDir()
	unsigned := reg.Host + "/swarm:unsigned"
	signed := reg.Host + "/swarm:signed"
	if _, err := c.Push(ctx, makeBundle(t, "unsigned"), unsigned, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := c.Push(ctx, makeBundle(t, "signed"), signed, PushOptions{Sign: signer})
	if err != nil {
		t.Fatal(err)
	}
	if res.Signature == nil {
		t.Fatal("no signature pushed")
	}
	got, err := c.Pull(ctx, signed, filepath.Join(dir, "ok.cortex"), PullOptions{VerifyKey: pub(signer)})
	if err != nil {
		t.Fatalf("pull of a signed bundle with its key: %v", err)
	}
	if got.SignedBy != KeyID(pub(signer)) {
		t.Errorf("SignedBy %q", got.SignedBy)
	}
	refused := func(name, ref string, key ed25519.PublicKey, want string) {
		t.Run(name, func(t *testing.T) {
			dest := filepath.Join(dir, "refused.cortex")
			_, err := c.Pull(ctx, ref, dest, PullOptions{VerifyKey: key})
			if err == nil || !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), want) {
				t.Fatalf("pull %s: %v; want permission denied containing %q", ref, err, want)
			}
			if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("refused bundle written")
			}
		})
	}
	refused("unsigned", unsigned, pub(signer), "is not signed")
	refused("other key", signed, pub(stranger), "none valid by key")

	t.Run("tampered signature", func(t *testing.T) {
		p := reg.BlobPath(signatureBlob(t, c, signed, res).String())
		orig, _ := os.ReadFile(p)
		var s Signature
		if err := json.Unmarshal(orig, &s); err != nil {
			t.Fatal(err)
		}
		s.Value[0] ^= 1
		changed, _ := json.Marshal(s)
		if len(changed) != len(orig) {
			t.Fatalf("re-encoded signature changed size")
		}
		_ = os.WriteFile(p, changed, 0o644)
		refused("", signed, pub(signer), "none valid")
	})
	t.Run("second signer", func(t *testing.T) {
		// A signature added later by another key does not change the
		// manifest digest, and either key verifies.
		res2, err := c.Push(ctx, makeBundle(t, "signed"), signed, PushOptions{Sign: stranger})
		if err != nil {
			t.Fatal(err)
		}
		if res2.Manifest.Digest != res.Manifest.Digest {
			t.Fatalf("signing again changed the manifest digest")
		}
		if _, err := c.Pull(ctx, signed, filepath.Join(dir, "s2.cortex"), PullOptions{VerifyKey: pub(stranger)}); err != nil {
			t.Fatal(err)
		}
	})
}

// signatureBlob finds the digest of the signature layer pushed for res.
func signatureBlob(t *testing.T, c *Client, ref string, res *PushResult) interface{ String() string } {
	t.Helper()
	ctx := context.Background()
	r, _ := ParseReference(ref)
	repo, err := c.repository(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	data, err := content.FetchAll(ctx, repo, *res.Signature)
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m.Layers[0].Digest
}

// writeDockerConfig writes a Docker config.json with one auths entry.
func writeDockerConfig(t *testing.T, host, user, password string) string {
	t.Helper()
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	cfg := `{"auths":{"` + host + `":{"auth":"` + auth + `"}}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// trustDir lays out a Docker certs.d directory trusting reg's CA.
func trustDir(t *testing.T, reg *ocitest.Registry) string {
	t.Helper()
	dir := t.TempDir()
	ca, err := os.ReadFile(reg.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, reg.Host), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, reg.Host, "ca.crt"), ca, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestTLSAndAuth: a registry that is not localhost/127.0.0.1 is reached
// over TLS (verified against the CA in certs.d) with credentials from the
// Docker configuration.
func TestTLSAndAuth(t *testing.T) {
	reg := ocitest.Start(t, ocitest.Options{Host: "127.0.0.2", Secure: true, Users: map[string]string{"alice": "s3cret-pass"}})
	ctx := context.Background()
	file := makeBundle(t, "tls")
	ref := reg.Host + "/secure/swarm:v1"
	certs := trustDir(t, reg)

	t.Setenv("DOCKER_CONFIG", writeDockerConfig(t, reg.Host, "alice", "s3cret-pass"))
	c := &Client{CertsDir: certs}
	res, err := c.Push(ctx, file, ref, PushOptions{})
	if err != nil {
		t.Fatalf("push with credentials: %v", err)
	}
	dest := filepath.Join(t.TempDir(), "p.cortex")
	if _, err := c.Pull(ctx, reg.Host+"/secure/swarm@"+res.Manifest.Digest.String(), dest, PullOptions{}); err != nil {
		t.Fatalf("pull with credentials: %v", err)
	}
	mustSame(t, file, dest)

	t.Run("no credentials", func(t *testing.T) {
		t.Setenv("DOCKER_CONFIG", t.TempDir())
		_, err := (&Client{CertsDir: certs}).Pull(ctx, ref, filepath.Join(t.TempDir(), "x"), PullOptions{})
		if !errdefs.IsPermissionDenied(err) || !strings.Contains(errdefs.HintOf(err), "log in") {
			t.Fatalf("pull without credentials: %v (hint %q)", err, errdefs.HintOf(err))
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		t.Setenv("DOCKER_CONFIG", writeDockerConfig(t, reg.Host, "alice", "wrong"))
		_, err := (&Client{CertsDir: certs}).Pull(ctx, ref, filepath.Join(t.TempDir(), "x"), PullOptions{})
		if !errdefs.IsPermissionDenied(err) {
			t.Fatalf("pull with a wrong password: %v", err)
		}
	})
	t.Run("untrusted CA", func(t *testing.T) {
		_, err := (&Client{CertsDir: t.TempDir()}).Pull(ctx, ref, filepath.Join(t.TempDir(), "x"), PullOptions{})
		if err == nil || !strings.Contains(err.Error(), "certificate") || !strings.Contains(errdefs.HintOf(err), "certs.d") {
			t.Fatalf("pull from an untrusted registry: %v (hint %q)", err, errdefs.HintOf(err))
		}
	})
}

// TestPlainHTTPOnlyOnLocalhost: a plain-HTTP registry anywhere but
// localhost/127.0.0.1 is refused (no silent downgrade), while a TLS
// registry on 127.0.0.1 is spoken to over TLS.
func TestPlainHTTPOnlyOnLocalhost(t *testing.T) {
	ctx := context.Background()
	file := makeBundle(t, "plain")
	t.Run("plain on 127.0.0.2 refused", func(t *testing.T) {
		reg := ocitest.Start(t, ocitest.Options{Host: "127.0.0.2"})
		c := emptyCreds(t)
		_, err := c.Push(ctx, file, reg.Host+"/swarm:v1", PushOptions{})
		if err == nil || !strings.Contains(err.Error(), "HTTP response to HTTPS client") {
			t.Fatalf("push to a plain-HTTP registry on 127.0.0.2: %v", err)
		}
	})
	t.Run("TLS on 127.0.0.1 kept", func(t *testing.T) {
		reg := ocitest.Start(t, ocitest.Options{Secure: true, Users: map[string]string{"bob": "pw-bob-123"}})
		t.Setenv("DOCKER_CONFIG", writeDockerConfig(t, reg.Host, "bob", "pw-bob-123"))
		c := &Client{CertsDir: trustDir(t, reg)}
		if _, err := c.Push(ctx, file, reg.Host+"/swarm:v1", PushOptions{}); err != nil {
			t.Fatalf("push to a TLS registry on 127.0.0.1: %v", err)
		}
		if c.plain[reg.Host] {
			t.Error("spoke plain HTTP to a registry that answers TLS")
		}
	})
}
