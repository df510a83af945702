// Package oci moves .cortex bundles in and out of OCI registries: a bundle
// is an OCI artifact (image manifest 1.1 with its own artifactType, an
// empty config and one layer, the bundle file itself), and its signature is
// a second artifact that refers to it.
//
// # Format
//
//   - manifest artifactType: application/vnd.cortex.bundle.v1
//   - layer: application/vnd.cortex.bundle.v1.tar+gzip, the .cortex file's
//     bytes unchanged, titled with its file name
//   - manifest annotations: dev.cortex.bundle.digest (the bundle's index
//     digest, the same one `cortex bundle` prints), dev.cortex.bundle.project,
//     and org.opencontainers.image.created fixed to the bundle format's epoch
//     (2000-01-01T00:00:00Z) so the same bundle always gives the same
//     manifest digest
//   - signature: an artifact with artifactType
//     application/vnd.cortex.bundle.signature.v1 whose subject is the bundle
//     manifest and whose one layer (application/vnd.cortex.bundle.signature.v1+json)
//     holds an ed25519 signature of the manifest digest and bundle digest.
//     It is found through the OCI referrers API, or the referrers tag schema
//     (sha256-<hex>) on registries without it, such as distribution 2.8.
//
// # Verification
//
// Pull never hands out bytes it did not check: the manifest must match its
// digest (when pulled by digest) and have the bundle artifactType; the
// layer is streamed through a digest and size check; the file must open as
// a bundle whose every entry matches its index (internal/bundle Verify)
// and whose index digest equals the manifest's annotation. With a
// verification key, a signature by that key over this manifest's digest
// must be among the referrers, or the pull fails.
//
// # Transport
//
// Credentials come from the Docker configuration (DOCKER_CONFIG or
// ~/.docker/config.json), including credential helpers (credsStore,
// credHelpers), through oras-go's credentials package. A registry at
// localhost, 127.0.0.1 or ::1 is spoken to over plain HTTP, as Docker does,
// unless it answers TLS on that port (then its certificate is verified);
// every other registry needs TLS, verified against the system roots plus
// any CA certificates in /etc/docker/certs.d/<host:port>/ (Docker's own
// convention).
//
// This package must not run bundles or talk to the daemon, and it holds
// no private key longer than a push.
package oci
