package cluster

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cortexrt/cortex/internal/bundle"
	"github.com/cortexrt/cortex/internal/oci"
	"github.com/cortexrt/cortex/internal/runtimes"
	"github.com/cortexrt/cortex/sdk"
)

// FetchOptions are fetch's flags.
type FetchOptions struct {
	// Bundle is the registry reference, pinned by digest.
	Bundle string
	// Dir is the bundle volume: the bundle is unpacked to Dir/app, which
	// the agent container mounts read-only at /app.
	Dir string
	// Share receives shims/ and sdk/ (mounted at /opt/cortex).
	Share string
	// VerifyKey, when set, is an ed25519 public key (PEM) whose signature
	// the bundle must carry.
	VerifyKey string
	// CertsDir overrides /etc/docker/certs.d.
	CertsDir string
	// Mountpoints are grant paths (relative) created under the bundle so
	// the agent's volume mounts have a directory to land on.
	Mountpoints []string
}

func fetchFlags() (*flag.FlagSet, runner) {
	var o FetchOptions
	var mps list
	fs := flag.NewFlagSet("fetch", flag.ContinueOnError)
	fs.StringVar(&o.Bundle, "bundle", "", "registry reference pinned by digest")
	fs.StringVar(&o.Dir, "dir", "", "bundle volume (unpacked to DIR/app)")
	fs.StringVar(&o.Share, "share", "", "directory for the shims and SDKs")
	fs.StringVar(&o.VerifyKey, "verify-key", "", "require a signature by this ed25519 public key")
	fs.StringVar(&o.CertsDir, "certs-dir", "", "per-registry CA certificates (default /etc/docker/certs.d)")
	fs.Var(&mps, "mountpoint", "grant path to create under the bundle (repeatable)")
	return fs, func(ctx context.Context, log *slog.Logger) error {
		o.Mountpoints = mps
		return Fetch(ctx, o, log)
	}
}

// Fetch pulls o.Bundle (checked as cortex pull checks it), unpacks it to
// o.Dir/app (every entry checked again against the index), creates the
// grant mount points and writes the shims and SDKs. Run again (a restarted
// init container), it replaces what an earlier run left.
func Fetch(ctx context.Context, o FetchOptions, log *slog.Logger) error {
	for n, v := range map[string]string{"bundle": o.Bundle, "dir": o.Dir, "share": o.Share} {
		if err := required(n, v); err != nil {
			return err
		}
	}
	ref, err := oci.ParseReference(o.Bundle)
	if err != nil {
		return err
	}
	if ref.Digest == "" {
		return fmt.Errorf("--bundle %s is not pinned by digest", o.Bundle)
	}
	var key ed25519.PublicKey
	if o.VerifyKey != "" {
		if key, err = oci.LoadPublicKey(o.VerifyKey); err != nil {
			return err
		}
	}
	tmp := filepath.Join(o.Dir, ".bundle.cortex")
	defer os.Remove(tmp)
	cl := &oci.Client{CertsDir: o.CertsDir, UserAgent: "cortexd-fetch"}
	res, err := cl.Pull(ctx, o.Bundle, tmp, oci.PullOptions{VerifyKey: key})
	if err != nil {
		return err
	}
	app := filepath.Join(o.Dir, "app")
	if err := os.RemoveAll(app); err != nil {
		return err
	}
	b, err := bundle.Open(tmp)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.Extract(ctx, app, bundle.DefaultLimits(), nil); err != nil {
		return err
	}
	root, err := os.OpenRoot(app)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, mp := range o.Mountpoints {
		// Inside the bundle only: os.Root refuses paths and links that
		// leave it.
		if err := root.MkdirAll(filepath.Clean(mp), 0o755); err != nil {
			return fmt.Errorf("mount point %s: %w", mp, err)
		}
	}
	if _, err := runtimes.Install(o.Share); err != nil {
		return fmt.Errorf("install shims: %w", err)
	}
	if err := sdk.WriteTo(filepath.Join(o.Share, "sdk")); err != nil {
		return fmt.Errorf("install SDKs: %w", err)
	}
	log.Info("bundle fetched", "bundle", res.Ref.String(), "digest", res.BundleDigest, "signed_by", res.SignedBy, "project", res.Project)
	return nil
}
