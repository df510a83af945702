package cli

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/oci"
)

func pullCmd(e *env) *cobra.Command {
	var output, verifyKey string
	cmd := &cobra.Command{
		Use:   "pull [--verify-key KEY] REF [-o FILE]",
		Short: "Pull a .cortex bundle from an OCI registry",
		Long: `Pull a bundle pushed with cortex push. REF is host[:port]/repository[:tag] or
host[:port]/repository@sha256:DIGEST. The bundle is written to FILE (default:
REPOSITORY's last element + .cortex) only after its layer matched its digest, every file
matched the bundle's index and the bundle digest matched the manifest's annotation.
With --verify-key KEY (an ed25519 public key in PEM) a valid signature by that key is
required too.`,
		Args: exactArgs(1, "REF"),
		RunE: func(c *cobra.Command, args []string) error {
			ref, err := oci.ParseReference(args[0])
			if err != nil {
				return err
			}
			if output == "" {
				output = path.Base(ref.Repository) + ".cortex"
			}
			res, err := e.pull(c.Context(), args[0], output, verifyKey)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s %s (from %s@%s)\n", output, res.BundleDigest, res.Ref.Name(), res.Manifest.Digest)
			if res.SignedBy != "" && e.tty(e.stderr) {
				fmt.Fprintf(e.stderr, "signature by %s verified\n", res.SignedBy)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "the .cortex file to write")
	cmd.Flags().StringVar(&verifyKey, "verify-key", "", "require a signature by this ed25519 public key (PEM)")
	return cmd
}

func (e *env) pull(ctx context.Context, ref, output, verifyKey string) (*oci.PullResult, error) {
	var pub ed25519.PublicKey
	if verifyKey != "" {
		k, err := oci.LoadPublicKey(verifyKey)
		if err != nil {
			return nil, err
		}
		pub = k
	}
	bar := e.progress("pulling")
	cl := &oci.Client{Progress: bar.update, UserAgent: "cortex/" + Version}
	res, err := cl.Pull(ctx, ref, output, oci.PullOptions{VerifyKey: pub})
	bar.done()
	if err != nil {
		return nil, err
	}
	return res, nil
}

// refSourceErr refuses --verify-key for something that is not a registry
// reference.
func refSourceErr(path string) error {
	return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "--verify-key checks registry signatures, and %s is not a registry reference", path),
		"run a reference such as localhost:5000/project:tag (or oci://...), or drop --verify-key")
}

// pullUpload pulls ref into a temporary file and returns it open for
// upload, as openUpload does for a local bundle.
func (e *env) pullUpload(ctx context.Context, ref, verifyKey string) (*os.File, func(), error) {
	dir, err := os.MkdirTemp("", "cortex-pull-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	file := filepath.Join(dir, "bundle.cortex")
	res, err := e.pull(ctx, ref, file, verifyKey)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	if e.tty(e.stderr) {
		fmt.Fprintf(e.stderr, "pulled %s@%s (bundle %s)\n", res.Ref.Name(), res.Manifest.Digest, short(res.BundleDigest))
	}
	f, err := os.Open(file)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return f, func() { f.Close(); cleanup() }, nil
}
