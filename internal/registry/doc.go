// Package registry runs a site's private OCI registry for Cortex bundles:
// the CNCF distribution registry (Debian's docker-registry package) as a
// child process or a systemd unit, always with TLS and htpasswd (bcrypt)
// authentication unless it is explicitly a loopback-only development
// registry.
//
// It owns the registry's state directory (Dir): config.yml, the htpasswd
// file, the TLS material (a self-signed CA and a server certificate for the
// site's names, unless the operator brings a certificate) and the blob
// storage. Files that hold secrets (keys, htpasswd, config with the HTTP
// secret) are created 0600 in a 0700 directory.
//
// It must not know about bundles or speak the registry protocol as a client
// (internal/oci does), and it never downloads a registry binary: it runs the
// one installed on the host.
package registry
