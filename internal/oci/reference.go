package oci

import (
	"net"
	"strings"

	"oras.land/oras-go/v2/registry"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// Scheme is the prefix that marks an argument as a registry reference
// whatever is on disk: oci://localhost:5000/swarm:v1.
const Scheme = "oci://"

// Reference is a parsed registry reference:
// host[:port]/repository[:tag][@digest].
type Reference struct {
	Registry   string // host[:port]
	Repository string // path below the host
	Tag        string // "" when Digest is set
	Digest     string // "sha256:..." or ""
}

// ParseReference parses s (with or without the oci:// prefix). A reference
// without tag or digest means the tag "latest", as in Docker; with both,
// the digest wins.
func ParseReference(s string) (Reference, error) {
	raw := strings.TrimPrefix(s, Scheme)
	r, err := registry.ParseReference(raw)
	if err == nil && r.Reference != "" {
		err = r.ValidateReference()
	}
	if err != nil {
		return Reference{}, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "%q is not a registry reference: %v", s, err),
			"write host[:port]/repository[:tag|@sha256:digest], e.g. localhost:5000/research-swarm:v1")
	}
	if !hostLike(r.Registry) {
		return Reference{}, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "%q does not start with a registry host", s),
			"name the registry: localhost:5000/"+raw+" or registry.example.com/"+raw)
	}
	ref := Reference{Registry: r.Registry, Repository: r.Repository}
	switch {
	case r.Reference == "":
		ref.Tag = "latest"
	case r.ValidateReferenceAsDigest() == nil:
		ref.Digest = r.Reference
	default:
		ref.Tag = r.Reference
	}
	return ref, nil
}

// LooksLikeReference reports whether an argument that names nothing on disk
// should be read as a registry reference: it carries the oci:// prefix, or
// its first path element is a registry host (contains a dot or a port, or
// is localhost, as Docker decides) and the rest parses.
func LooksLikeReference(s string) bool {
	if strings.HasPrefix(s, Scheme) {
		return true
	}
	if strings.HasPrefix(s, "/") || strings.HasPrefix(s, ".") {
		return false
	}
	host, _, ok := strings.Cut(s, "/")
	if !ok || !hostLike(host) {
		return false
	}
	_, err := registry.ParseReference(s)
	return err == nil
}

// hostLike is Docker's test for "the first element is a registry": it
// has a dot or a port, or is localhost.
func hostLike(host string) bool {
	if host == "localhost" || strings.HasPrefix(host, "localhost:") {
		return true
	}
	if strings.HasPrefix(host, "[") { // [::1]:5000
		return true
	}
	return strings.ContainsAny(host, ".:")
}

// Name is host/repository without tag or digest.
func (r Reference) Name() string { return r.Registry + "/" + r.Repository }

// Ref is the tag or the digest.
func (r Reference) Ref() string {
	if r.Digest != "" {
		return r.Digest
	}
	return r.Tag
}

// String is the canonical form: host/repo:tag or host/repo@digest.
func (r Reference) String() string {
	if r.Digest != "" {
		return r.Name() + "@" + r.Digest
	}
	return r.Name() + ":" + r.Tag
}

// PlainHTTPHost reports whether host (a registry host[:port]) is one the
// client speaks plain HTTP to when it does not answer TLS: localhost,
// 127.0.0.1 and ::1, as Docker treats them.
func PlainHTTPHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	switch host {
	case "localhost", "127.0.0.1", "::1":
		return true
	}
	return false
}

// defaultPort gives a host without a port the port of scheme.
func defaultPort(hostport, port string) string {
	if _, _, err := net.SplitHostPort(hostport); err == nil {
		return hostport
	}
	return net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), port)
}
