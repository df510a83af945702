package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/cortexrt/cortex/internal/bundle"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/oci"
)

func pushCmd(e *env) *cobra.Command {
	var signKey string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "push [--sign KEY] [-q] FILE REF",
		Short: "Push a .cortex bundle to an OCI registry",
		Long: `Push a .cortex bundle to an OCI registry as an artifact of type ` + oci.ArtifactType + `.
REF is host[:port]/repository[:tag] (tag "latest" when omitted). The bundle is verified
before it leaves. Credentials come from the Docker configuration ($DOCKER_CONFIG or
~/.docker/config.json, credential helpers included); localhost and 127.0.0.1 are spoken
to over plain HTTP, every other registry over TLS.

With --sign KEY (an ed25519 private key in PEM, see cortex key generate) a signature
artifact that refers to the bundle is pushed too; cortex run --verify-key checks it.
Prints the reference and the manifest digest (-q: the digest alone), which
cortex run/pull accept as REPOSITORY@DIGEST.`,
		Args: exactArgs(2, "FILE and REF"),
		RunE: func(c *cobra.Command, args []string) error {
			return e.push(c.Context(), args[0], args[1], signKey, quiet)
		},
	}
	cmd.Flags().StringVar(&signKey, "sign", "", "sign with this ed25519 private key (PEM)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the manifest digest")
	return cmd
}

func (e *env) push(ctx context.Context, file, ref, signKey string, quiet bool) error {
	var key ed25519.PrivateKey
	if signKey != "" {
		k, err := oci.LoadPrivateKey(signKey)
		if err != nil {
			return err
		}
		key = k
	}
	project, err := bundleProject(file)
	if err != nil {
		return err
	}
	bar := e.progress("pushing")
	cl := &oci.Client{Progress: bar.update, UserAgent: "cortex/" + Version}
	res, err := cl.Push(ctx, file, ref, oci.PushOptions{Project: project, Sign: key})
	bar.done()
	if err != nil {
		return err
	}
	if quiet {
		fmt.Fprintln(e.stdout, res.Manifest.Digest)
		return nil
	}
	fmt.Fprintf(e.stdout, "%s %s (bundle %s, %s)\n", res.Ref, res.Manifest.Digest, res.BundleDigest, humanBytes(uint64(res.Size)))
	if res.Signature != nil {
		fmt.Fprintf(e.stdout, "signed %s with key %s\n", res.Signature.Digest, oci.KeyID(key.Public().(ed25519.PublicKey)))
	}
	return nil
}

// bundleProject opens file as a bundle and returns its project name.
func bundleProject(file string) (string, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", err
	}
	b, err := bundle.Open(abs)
	if err != nil {
		return "", err
	}
	defer b.Close()
	m, err := manifest.Parse(bytes.NewReader(b.Manifest()), file+":cortex.yaml")
	if err != nil {
		return "", errdefs.Wrap(errdefs.InvalidArgument, err)
	}
	return m.Project, nil
}
