package registry

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// Binaries are the names the distribution registry is installed under:
// Debian's docker-registry package, then upstream's.
var Binaries = []string{"docker-registry", "registry"}

// FindBinary returns the installed registry binary.
func FindBinary() (string, error) {
	for _, b := range Binaries {
		if p, err := exec.LookPath(b); err == nil {
			return p, nil
		}
	}
	return "", errdefs.WithHint(errdefs.New(errdefs.NotFound, "no registry binary (%s) on $PATH", strings.Join(Binaries, ", ")),
		"apt-get install docker-registry (the CNCF distribution registry)")
}

// Options describe a site registry.
type Options struct {
	// Dir holds the registry's state: config.yml, htpasswd, tls/ and
	// storage/. Created 0700 if missing.
	Dir string
	// Addr is host:port to listen on (":5000" listens on every address).
	Addr string
	// Hostnames are the DNS names and IP addresses clients use to reach the
	// registry; a generated certificate is valid for each. Empty means the
	// host name, localhost, 127.0.0.1 and ::1.
	Hostnames []string
	// CertFile and KeyFile are the operator's certificate and key (PEM).
	// Both empty means a self-signed CA and a server certificate are
	// generated under Dir/tls and renewed when they near expiry.
	CertFile, KeyFile string
	// Insecure serves plain HTTP without authentication. It is refused
	// unless Addr is a loopback address: a development registry that no
	// other machine can reach.
	Insecure bool
}

// Site is a prepared registry directory.
type Site struct {
	Dir      string
	Addr     string
	Insecure bool
	// Hostnames the certificate covers (generated certificates).
	Hostnames []string

	ConfigPath   string // Dir/config.yml
	HtpasswdPath string // Dir/htpasswd
	StorageDir   string // Dir/storage
	// CAPath is the generated CA certificate clients must trust ("" when
	// the operator brought a certificate or the site is insecure).
	CAPath   string
	CertPath string
	KeyPath  string
}

// Prepare validates opts and lays out Dir: the storage directory, the TLS
// material and config.yml. It keeps what is there (users, storage, the CA)
// and is safe to run on every start.
func Prepare(opts Options) (*Site, error) {
	if opts.Dir == "" {
		return nil, errdefs.New(errdefs.InvalidArgument, "registry directory is empty")
	}
	if opts.Addr == "" {
		opts.Addr = ":5000"
	}
	host, port, err := net.SplitHostPort(opts.Addr)
	if err != nil || port == "" {
		return nil, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "--addr %q is not host:port", opts.Addr), "e.g. --addr :5000 or --addr 10.0.0.5:443")
	}
	if opts.Insecure && !isLoopbackHost(host) {
		return nil, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "an insecure registry (plain HTTP, no authentication) must listen on a loopback address, not %q", opts.Addr),
			"drop --insecure (TLS and htpasswd are set up for you) or listen on 127.0.0.1")
	}
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return nil, errdefs.New(errdefs.InvalidArgument, "--tls-cert and --tls-key go together")
	}
	if opts.Insecure && opts.CertFile != "" {
		return nil, errdefs.New(errdefs.InvalidArgument, "--insecure serves plain HTTP; it takes no certificate")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	s := &Site{
		Dir:          dir,
		Addr:         opts.Addr,
		Insecure:     opts.Insecure,
		ConfigPath:   filepath.Join(dir, "config.yml"),
		HtpasswdPath: filepath.Join(dir, "htpasswd"),
		StorageDir:   filepath.Join(dir, "storage"),
	}
	for _, d := range []string{dir, s.StorageDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	if !opts.Insecure {
		switch {
		case opts.CertFile != "":
			s.CertPath, s.KeyPath = opts.CertFile, opts.KeyFile
			for _, p := range []string{s.CertPath, s.KeyPath} {
				if _, err := os.Stat(p); err != nil {
					return nil, errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("TLS file: %w", err))
				}
			}
		default:
			names := opts.Hostnames
			if len(names) == 0 {
				names = DefaultHostnames()
			}
			s.Hostnames = names
			if err := s.ensureCerts(names); err != nil {
				return nil, err
			}
		}
		if _, err := os.Stat(s.HtpasswdPath); errors.Is(err, os.ErrNotExist) {
			// distribution would otherwise create one with a random user.
			if err := writeFileAtomic(s.HtpasswdPath, nil, 0o600); err != nil {
				return nil, err
			}
		}
	}
	secret, err := s.httpSecret()
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(s.ConfigPath, []byte(s.config(secret)), 0o600); err != nil {
		return nil, err
	}
	return s, nil
}

// DefaultHostnames are the names a generated certificate covers when none
// are given: this host's name, localhost and the loopback addresses.
func DefaultHostnames() []string {
	names := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		names = append([]string{h}, names...)
	}
	return names
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// httpSecret is the key distribution signs upload state with; it must be
// stable across restarts (and the same on every replica).
func (s *Site) httpSecret() (string, error) {
	p := filepath.Join(s.Dir, "http-secret")
	if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	var r [32]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	v := hex.EncodeToString(r[:])
	return v, writeFileAtomic(p, []byte(v+"\n"), 0o600)
}

// config renders distribution's config.yml (version 0.1). Values are
// quoted as YAML double-quoted strings so paths with odd characters stay
// intact.
func (s *Site) config(secret string) string {
	q := func(v string) string { return fmt.Sprintf("%q", v) }
	var b strings.Builder
	b.WriteString("# Written by cortex-ops registry; rewritten on every start.\n")
	b.WriteString("version: 0.1\n")
	b.WriteString("log:\n  level: info\n  formatter: text\n  fields:\n    service: cortex-registry\n")
	b.WriteString("storage:\n  filesystem:\n    rootdirectory: " + q(s.StorageDir) + "\n  delete:\n    enabled: true\n")
	b.WriteString("http:\n  addr: " + q(s.Addr) + "\n  secret: " + q(secret) + "\n")
	b.WriteString("  headers:\n    X-Content-Type-Options: [nosniff]\n")
	if !s.Insecure {
		b.WriteString("  tls:\n    certificate: " + q(s.CertPath) + "\n    key: " + q(s.KeyPath) + "\n")
		b.WriteString("auth:\n  htpasswd:\n    realm: \"cortex-registry\"\n    path: " + q(s.HtpasswdPath) + "\n")
	}
	b.WriteString("health:\n  storagedriver:\n    enabled: true\n    interval: 10s\n    threshold: 3\n")
	return b.String()
}

// Scheme is "https", or "http" for an insecure site.
func (s *Site) Scheme() string {
	if s.Insecure {
		return "http"
	}
	return "https"
}

// Command returns the registry process for this site (not started).
func (s *Site) Command(binary string) *exec.Cmd {
	cmd := exec.Command(binary, "serve", s.ConfigPath)
	cmd.Dir = s.Dir
	setProcAttr(cmd)
	return cmd
}

// SystemdUnit is a unit that runs this site's registry with binary.
func (s *Site) SystemdUnit(binary string) string {
	return fmt.Sprintf(`# Written by cortex-ops registry --systemd.
[Unit]
Description=Cortex private registry (CNCF distribution) on %s
Documentation=https://github.com/cortexrt/cortex/blob/main/docs/cluster.md
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=%s serve %s
Restart=on-failure
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ReadWritePaths=%s
UMask=0077

[Install]
WantedBy=multi-user.target
`, s.Addr, binary, s.ConfigPath, s.Dir)
}

// writeFileAtomic writes data to path through a temporary file in the
// same directory, with mode perm from the start.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
