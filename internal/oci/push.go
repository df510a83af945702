package oci

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/cortexrt/cortex/internal/bundle"
	"github.com/cortexrt/cortex/internal/errdefs"
)

// Media types and annotations of a bundle artifact.
const (
	ArtifactType           = "application/vnd.cortex.bundle.v1"
	MediaTypeBundle        = "application/vnd.cortex.bundle.v1.tar+gzip"
	ArtifactTypeSignature  = "application/vnd.cortex.bundle.signature.v1"
	MediaTypeSignature     = "application/vnd.cortex.bundle.signature.v1+json"
	AnnotationBundleDigest = "dev.cortex.bundle.digest"
	AnnotationProject      = "dev.cortex.bundle.project"
	AnnotationKeyID        = "dev.cortex.signature.key"
)

// epoch is the created time of every bundle manifest: the bundle format's
// fixed mtime, so one bundle always gives one manifest digest.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Format(time.RFC3339)

// maxSignatureSize bounds a signature blob and manifest read from a
// registry.
const maxSignatureSize = 64 << 10

// maxManifestSize bounds a bundle manifest read from a registry.
const maxManifestSize = 4 << 20

// PushOptions tune Push.
type PushOptions struct {
	// Project is recorded as an annotation ("" = none).
	Project string
	// Sign, when set, also pushes a signature artifact by this key.
	Sign ed25519.PrivateKey
}

// PushResult says what was pushed.
type PushResult struct {
	Ref          Reference
	Manifest     ocispec.Descriptor
	BundleDigest string
	Size         int64 // the bundle file's
	Signature    *ocispec.Descriptor
}

// Artifact is a bundle file described as the OCI artifact Push uploads.
// The manifest depends only on the file's bytes and the project name, so
// its digest is known before (and without) a push.
type Artifact struct {
	Path         string
	Layer        ocispec.Descriptor
	Manifest     []byte
	Desc         ocispec.Descriptor // of Manifest
	BundleDigest string
	Project      string
}

// Describe verifies the bundle at path (every entry against its index) and
// returns the artifact Push would upload for it.
func Describe(ctx context.Context, path, project string) (*Artifact, error) {
	b, err := bundle.Open(path)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	if err := b.Verify(ctx, bundle.DefaultLimits()); err != nil {
		return nil, err
	}
	layer, err := describeFile(path)
	if err != nil {
		return nil, err
	}
	a := &Artifact{Path: path, Layer: layer, BundleDigest: b.Index().Digest, Project: project}
	ann := map[string]string{
		ocispec.AnnotationCreated: epoch,
		AnnotationBundleDigest:    a.BundleDigest,
	}
	if project != "" {
		ann[AnnotationProject] = project
	}
	m := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: ArtifactType,
		Config:       ocispec.DescriptorEmptyJSON,
		Layers:       []ocispec.Descriptor{layer},
		Annotations:  ann,
	}
	if a.Manifest, err = json.Marshal(m); err != nil {
		return nil, err
	}
	a.Desc = content.NewDescriptorFromBytes(ocispec.MediaTypeImageManifest, a.Manifest)
	a.Desc.ArtifactType = ArtifactType
	return a, nil
}

// Push verifies the bundle at path, uploads it as the layer of a bundle
// artifact, tags the manifest as ref and, with opts.Sign, pushes a
// signature that refers to it.
func (c *Client) Push(ctx context.Context, path, refStr string, opts PushOptions) (*PushResult, error) {
	ref, err := ParseReference(refStr)
	if err != nil {
		return nil, err
	}
	if ref.Digest != "" {
		return nil, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "push to %s: a push names a tag, not a digest", refStr),
			"push to "+ref.Name()+":TAG; the digest is printed after the push")
	}
	a, err := Describe(ctx, path, opts.Project)
	if err != nil {
		return nil, err
	}
	repo, err := c.repository(ctx, ref)
	if err != nil {
		return nil, err
	}
	if err := c.pushBlob(ctx, repo, a.Layer, path); err != nil {
		return nil, registryErr(ref, "push", err)
	}
	empty := ocispec.DescriptorEmptyJSON
	if ok, err := repo.Exists(ctx, empty); err != nil || !ok {
		if err := repo.Push(ctx, empty, bytes.NewReader(empty.Data)); err != nil && !isAlreadyExists(err) {
			return nil, registryErr(ref, "push", err)
		}
	}
	if err := repo.PushReference(ctx, a.Desc, bytes.NewReader(a.Manifest), ref.Tag); err != nil {
		return nil, registryErr(ref, "push", err)
	}
	res := &PushResult{Ref: ref, Manifest: a.Desc, BundleDigest: a.BundleDigest, Size: a.Layer.Size}
	if opts.Sign != nil {
		sig, err := pushSignature(ctx, repo, a.Desc, a.BundleDigest, opts.Sign)
		if err != nil {
			return nil, registryErr(ref, "push signature for", err)
		}
		res.Signature = &sig
	}
	return res, nil
}

// describeFile hashes the bundle file into a layer descriptor.
func describeFile(path string) (ocispec.Descriptor, error) {
	f, err := os.Open(path)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{
		MediaType:   MediaTypeBundle,
		Digest:      digest.NewDigest(digest.SHA256, h),
		Size:        n,
		Annotations: map[string]string{ocispec.AnnotationTitle: filepath.Base(path)},
	}, nil
}

// pushBlob uploads the file unless the repository already has it.
func (c *Client) pushBlob(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, path string) error {
	if ok, err := repo.Exists(ctx, desc); err == nil && ok {
		c.progress(desc.Size, desc.Size)
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return repo.Push(ctx, desc, &progressReader{r: f, total: desc.Size, fn: c.progress})
}

func (c *Client) progress(done, total int64) {
	if c.Progress != nil {
		c.Progress(done, total)
	}
}

// pushSignature pushes a signature artifact whose subject is man.
func pushSignature(ctx context.Context, repo *remote.Repository, man ocispec.Descriptor, bundleDigest string, priv ed25519.PrivateKey) (ocispec.Descriptor, error) {
	sig := Sign(priv, man.Digest.String(), bundleDigest)
	data, err := json.Marshal(sig)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	blob := content.NewDescriptorFromBytes(MediaTypeSignature, data)
	if err := repo.Push(ctx, blob, bytesReader(data)); err != nil && !isAlreadyExists(err) {
		return ocispec.Descriptor{}, err
	}
	return oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, ArtifactTypeSignature, oras.PackManifestOptions{
		Subject: &man,
		Layers:  []ocispec.Descriptor{blob},
		ManifestAnnotations: map[string]string{
			ocispec.AnnotationCreated: time.Now().UTC().Format(time.RFC3339),
			AnnotationKeyID:           sig.KeyID,
		},
	})
}

type progressReader struct {
	r     io.Reader
	done  int64
	total int64
	fn    func(done, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if p.fn != nil {
		p.fn(p.done, p.total)
	}
	return n, err
}

func describe(d ocispec.Descriptor) string { return fmt.Sprintf("%s (%d bytes)", d.Digest, d.Size) }
