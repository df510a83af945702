package oci

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/retry"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// DefaultCertsDir is where per-registry CA certificates live, as Docker
// reads them: <dir>/<host:port>/*.crt (and a client certificate pair as
// *.cert and *.key).
const DefaultCertsDir = "/etc/docker/certs.d"

// Client talks to OCI registries. The zero value reads credentials from
// the Docker configuration and CA certificates from DefaultCertsDir.
type Client struct {
	// Credentials resolves a registry's credentials; nil reads the Docker
	// configuration (DOCKER_CONFIG or ~/.docker/config.json, credential
	// helpers included).
	Credentials credentials.Store
	// CertsDir overrides DefaultCertsDir.
	CertsDir string
	// UserAgent is sent with every request ("" = "cortex").
	UserAgent string
	// Progress, when set, is called as a blob moves: bytes done and total.
	Progress func(done, total int64)

	mu    sync.Mutex
	plain map[string]bool // host -> speak plain HTTP (decided once)
}

// repository opens ref's repository with auth and the transport its host
// needs.
func (c *Client) repository(ctx context.Context, ref Reference) (*remote.Repository, error) {
	repo, err := remote.NewRepository(ref.Name())
	if err != nil {
		return nil, errdefs.Wrap(errdefs.InvalidArgument, err)
	}
	tlsConf, err := c.tlsConfig(ref.Registry)
	if err != nil {
		return nil, err
	}
	repo.PlainHTTP = c.plainHTTP(ctx, ref.Registry)
	store := c.Credentials
	if store == nil {
		ds, err := credentials.NewStoreFromDocker(credentials.StoreOptions{})
		if err != nil {
			return nil, errdefs.WithHint(fmt.Errorf("read the Docker credentials: %w", err), "check $DOCKER_CONFIG/config.json (or ~/.docker/config.json)")
		}
		store = ds
	}
	ua := c.UserAgent
	if ua == "" {
		ua = "cortex"
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.TLSClientConfig = tlsConf
	repo.Client = &auth.Client{
		Client:     &http.Client{Transport: retry.NewTransport(base)},
		Cache:      auth.NewCache(),
		Credential: credentials.Credential(store),
		Header:     http.Header{"User-Agent": {ua}},
	}
	return repo, nil
}

// plainHTTP decides, once per host, whether to speak plain HTTP: only to
// localhost, 127.0.0.1 and ::1, and only when the port does not answer a
// TLS handshake (Docker too tries HTTPS first on such registries).
func (c *Client) plainHTTP(ctx context.Context, host string) bool {
	if !PlainHTTPHost(host) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.plain[host]; ok {
		return v
	}
	if c.plain == nil {
		c.plain = map[string]bool{}
	}
	v := !speaksTLS(ctx, defaultPort(host, "443"))
	c.plain[host] = v
	return v
}

// speaksTLS reports whether addr completes a TLS handshake. The
// certificate is not checked here; the real connection checks it.
func speaksTLS(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer conn.Close()
	host, _, _ := net.SplitHostPort(addr)
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, ServerName: host}) //nolint:gosec // protocol probe only
	return tc.HandshakeContext(ctx) == nil
}

// tlsConfig trusts the system roots plus the host's CA certificates in
// the certs directory, and presents a client certificate found there.
func (c *Client) tlsConfig(host string) (*tls.Config, error) {
	dir := c.CertsDir
	if dir == "" {
		dir = DefaultCertsDir
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	hostDir := filepath.Join(dir, strings.ReplaceAll(host, "/", "_"))
	ents, err := os.ReadDir(hostDir)
	if err != nil {
		return conf, nil // no per-host material: system roots only
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, e := range ents {
		p := filepath.Join(hostDir, e.Name())
		switch {
		case strings.HasSuffix(e.Name(), ".crt"):
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			if !pool.AppendCertsFromPEM(b) {
				return nil, errdefs.New(errdefs.InvalidArgument, "%s holds no PEM certificate", p)
			}
		case strings.HasSuffix(e.Name(), ".cert"):
			key := strings.TrimSuffix(p, ".cert") + ".key"
			pair, err := tls.LoadX509KeyPair(p, key)
			if err != nil {
				return nil, errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("client certificate %s: %w", p, err))
			}
			conf.Certificates = append(conf.Certificates, pair)
		}
	}
	conf.RootCAs = pool
	return conf, nil
}

// registryErr gives a registry failure a category and a hint.
func registryErr(ref Reference, op string, err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	cat := errdefs.Unavailable
	hint := ""
	switch {
	case strings.Contains(msg, "401") || strings.Contains(msg, "unauthorized") || strings.Contains(msg, "basic credential not found"):
		cat = errdefs.PermissionDenied
		hint = fmt.Sprintf("log in first (docker login %s, or an entry in $DOCKER_CONFIG/config.json)", ref.Registry)
	case strings.Contains(msg, "403") || strings.Contains(msg, "denied"):
		cat = errdefs.PermissionDenied
	case strings.Contains(msg, "not found") || strings.Contains(msg, "404"):
		cat = errdefs.NotFound
	case strings.Contains(msg, "certificate"):
		cat = errdefs.Unavailable
		hint = fmt.Sprintf("trust the registry's CA: copy it to %s/%s/ca.crt", DefaultCertsDir, ref.Registry)
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		hint = "registries other than localhost/127.0.0.1 must speak TLS; give this one a certificate (cortex-ops registry sets one up)"
	}
	return &errdefs.Error{Cat: cat, Msg: op + " " + ref.String(), Err: err, Hint: hint}
}
