package oci

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/cortexrt/cortex/internal/bundle"
	"github.com/cortexrt/cortex/internal/errdefs"
)

// PullOptions tune Pull.
type PullOptions struct {
	// VerifyKey, when set, requires a valid signature by this key.
	VerifyKey ed25519.PublicKey
}

// PullResult says what was pulled.
type PullResult struct {
	Ref          Reference
	Manifest     ocispec.Descriptor
	BundleDigest string
	Project      string
	// SignedBy is the key id of the signature that verified ("" without
	// VerifyKey).
	SignedBy string
}

// maxMaxSignatures bounds how many signatures of one bundle are examined.
const maxSignatures = 32

// Pull fetches the bundle ref names, verifies it (see the package comment)
// and writes it to dest, through a temporary file beside dest that is
// renamed only once everything checked out.
func (c *Client) Pull(ctx context.Context, refStr, dest string, opts PullOptions) (*PullResult, error) {
	ref, err := ParseReference(refStr)
	if err != nil {
		return nil, err
	}
	repo, err := c.repository(ctx, ref)
	if err != nil {
		return nil, err
	}
	man, m, err := fetchManifest(ctx, repo, ref)
	if err != nil {
		return nil, err
	}
	res := &PullResult{Ref: ref, Manifest: man, BundleDigest: m.Annotations[AnnotationBundleDigest], Project: m.Annotations[AnnotationProject]}
	if opts.VerifyKey != nil {
		id, err := verifySignatures(ctx, repo, ref, man, res.BundleDigest, opts.VerifyKey)
		if err != nil {
			return nil, err
		}
		res.SignedBy = id
	}
	layer := m.Layers[0]
	if max := bundle.DefaultLimits().MaxTotalSize + 1<<30; layer.Size < 0 || layer.Size > max {
		return nil, invalid(ref, "its bundle layer claims %d bytes, more than a bundle may hold", layer.Size)
	}
	destAbs, err := filepath.Abs(dest)
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(destAbs), ".cortex-pull-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if err := c.fetchBlob(ctx, repo, ref, layer, tmp); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := checkBundle(ctx, ref, tmp.Name(), res.BundleDigest); err != nil {
		return nil, err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), destAbs); err != nil {
		return nil, err
	}
	return res, nil
}

func invalid(ref Reference, format string, args ...any) error {
	return errdefs.New(errdefs.InvalidArgument, "%s: %s", ref, fmt.Sprintf(format, args...))
}

// fetchManifest resolves ref and checks that it is a bundle artifact.
func fetchManifest(ctx context.Context, repo *remote.Repository, ref Reference) (ocispec.Descriptor, ocispec.Manifest, error) {
	var m ocispec.Manifest
	desc, rc, err := repo.FetchReference(ctx, ref.Ref())
	if err != nil {
		return desc, m, registryErr(ref, "pull", err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxManifestSize+1))
	if err != nil {
		return desc, m, registryErr(ref, "pull", err)
	}
	if len(data) > maxManifestSize {
		return desc, m, invalid(ref, "manifest larger than %d bytes", maxManifestSize)
	}
	// The digest that counts is the one of the bytes received.
	got := digest.FromBytes(data)
	if ref.Digest != "" && got.String() != ref.Digest {
		return desc, m, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument,
			"%s: the registry sent a manifest whose digest is %s; refusing it", ref, got), "the registry's copy is corrupt or was tampered with")
	}
	if desc.Digest != "" && desc.Digest != got {
		return desc, m, invalid(ref, "the registry says the manifest is %s but sent %s", desc.Digest, got)
	}
	desc.Digest, desc.Size = got, int64(len(data))
	if err := json.Unmarshal(data, &m); err != nil {
		return desc, m, invalid(ref, "manifest is not JSON: %v", err)
	}
	if m.MediaType != ocispec.MediaTypeImageManifest || desc.MediaType != ocispec.MediaTypeImageManifest {
		return desc, m, notBundle(ref, fmt.Sprintf("media type %q", desc.MediaType))
	}
	if m.ArtifactType != ArtifactType {
		return desc, m, notBundle(ref, fmt.Sprintf("artifactType %q", m.ArtifactType))
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != MediaTypeBundle {
		return desc, m, invalid(ref, "a bundle artifact has exactly one layer of type %s", MediaTypeBundle)
	}
	if d := m.Annotations[AnnotationBundleDigest]; d == "" {
		return desc, m, invalid(ref, "the manifest has no %s annotation", AnnotationBundleDigest)
	}
	desc.ArtifactType = m.ArtifactType
	desc.Annotations = m.Annotations
	return desc, m, nil
}

func notBundle(ref Reference, what string) error {
	return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "%s is not a Cortex bundle (%s, want artifactType %s)", ref, what, ArtifactType),
		"push bundles with cortex push FILE REF")
}

// fetchBlob streams desc into w, checking its size and digest.
func (c *Client) fetchBlob(ctx context.Context, repo *remote.Repository, ref Reference, desc ocispec.Descriptor, w io.Writer) error {
	rc, err := repo.Fetch(ctx, desc)
	if err != nil {
		return registryErr(ref, "pull", err)
	}
	defer rc.Close()
	vr := content.NewVerifyReader(&progressReader{r: rc, total: desc.Size, fn: c.progress}, desc)
	if _, err := io.Copy(w, vr); err != nil {
		return tampered(ref, desc, err)
	}
	if err := vr.Verify(); err != nil {
		return tampered(ref, desc, err)
	}
	return nil
}

func tampered(ref Reference, desc ocispec.Descriptor, err error) error {
	if errors.Is(err, content.ErrMismatchedDigest) || errors.Is(err, content.ErrTrailingData) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errdefs.WithHint(&errdefs.Error{Cat: errdefs.InvalidArgument,
			Msg: fmt.Sprintf("pull %s: blob %s does not match its digest; refusing it", ref, describe(desc)), Err: err},
			"the registry's copy is corrupt or was tampered with: tell its operator (a push does not replace a blob the registry already holds)")
	}
	return registryErr(ref, "pull", err)
}

// checkBundle opens and verifies the pulled file and checks it is the
// bundle the manifest announces.
func checkBundle(ctx context.Context, ref Reference, path, want string) error {
	b, err := bundle.Open(path)
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	defer b.Close()
	if err := b.Verify(ctx, bundle.DefaultLimits()); err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	if got := b.Index().Digest; got != want {
		return errdefs.New(errdefs.InvalidArgument, "pull %s: the bundle's digest is %s but the manifest announces %s; refusing it", ref, got, want)
	}
	return nil
}

// verifySignatures finds a signature by pub over man among its referrers.
func verifySignatures(ctx context.Context, repo *remote.Repository, ref Reference, man ocispec.Descriptor, bundleDigest string, pub ed25519.PublicKey) (string, error) {
	var sigs []ocispec.Descriptor
	err := repo.Referrers(ctx, man, ArtifactTypeSignature, func(rs []ocispec.Descriptor) error {
		sigs = append(sigs, rs...)
		if len(sigs) >= maxSignatures {
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) && !errors.Is(err, errdef.ErrNotFound) {
		return "", registryErr(ref, "list signatures of", err)
	}
	want := KeyID(pub)
	if len(sigs) == 0 {
		return "", errdefs.WithHint(errdefs.New(errdefs.PermissionDenied, "%s (%s) is not signed; refusing it", ref, man.Digest),
			"push it with cortex push --sign KEY, or drop --verify-key")
	}
	var problems []string
	for _, d := range sigs {
		sig, err := fetchSignature(ctx, repo, d, man)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if sig.KeyID != want {
			continue
		}
		if err := sig.Verify(pub, man.Digest.String(), bundleDigest); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		return sig.KeyID, nil
	}
	msg := fmt.Sprintf("%s (%s) has %d signature(s), none valid by key %s; refusing it", ref, man.Digest, len(sigs), want)
	if len(problems) > 0 {
		msg += " (" + problems[0] + ")"
	}
	return "", errdefs.WithHint(errdefs.New(errdefs.PermissionDenied, "%s", msg), "check --verify-key names the public half of the key the bundle was signed with")
}

var errStop = errors.New("enough signatures")

func fetchSignature(ctx context.Context, repo *remote.Repository, d ocispec.Descriptor, subject ocispec.Descriptor) (Signature, error) {
	var sig Signature
	if d.Size > maxSignatureSize {
		return sig, fmt.Errorf("signature manifest %s is too large", d.Digest)
	}
	data, err := content.FetchAll(ctx, repo, d)
	if err != nil {
		return sig, fmt.Errorf("fetch signature %s: %w", d.Digest, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return sig, fmt.Errorf("signature manifest %s: %w", d.Digest, err)
	}
	if m.Subject == nil || m.Subject.Digest != subject.Digest || len(m.Layers) != 1 || m.Layers[0].MediaType != MediaTypeSignature || m.Layers[0].Size > maxSignatureSize {
		return sig, fmt.Errorf("signature manifest %s is malformed", d.Digest)
	}
	blob, err := content.FetchAll(ctx, repo.Blobs(), m.Layers[0])
	if err != nil {
		return sig, fmt.Errorf("fetch signature %s: %w", m.Layers[0].Digest, err)
	}
	dec := json.NewDecoder(bytes.NewReader(blob))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sig); err != nil {
		return sig, fmt.Errorf("signature %s: %w", m.Layers[0].Digest, err)
	}
	return sig, nil
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func isAlreadyExists(err error) bool { return errors.Is(err, errdef.ErrAlreadyExists) }
