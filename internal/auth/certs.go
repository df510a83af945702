package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// Cert is a client certificate the daemon's CA issued. The identity is
// the certificate's common name (cert:NAME); its role and projects are
// this record's, looked up by serial, so revocation is by serial.
type Cert struct {
	Name      string    `json:"name"`
	Serial    string    `json:"serial"` // hex
	Role      Role      `json:"role"`
	Projects  []string  `json:"projects,omitempty"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	Addresses []string  `json:"addresses,omitempty"`
}

// CA is the daemon's certificate authority: it signs the TCP listener's
// certificate (unless the config names one) and client certificates.
type CA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	PEM     []byte
	keyPath string
}

// loadCA reads ca.crt and ca.key in dir, making them (ECDSA P-256, ten
// years) when absent.
func loadCA(dir string) (*CA, error) {
	crtPath, keyPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if _, err := os.Stat(crtPath); errors.Is(err, os.ErrNotExist) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		host, _ := os.Hostname()
		now := time.Now()
		tmpl := &x509.Certificate{
			SerialNumber:          randomSerial(),
			Subject:               pkix.Name{CommonName: "cortexd CA " + host, Organization: []string{"cortex"}},
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.AddDate(10, 0, 0),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
			BasicConstraintsValid: true,
			IsCA:                  true,
			MaxPathLenZero:        true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			return nil, err
		}
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})); err != nil {
			return nil, err
		}
		if err := writeFileAtomic(crtPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
			return nil, err
		}
	}
	c, k, pemBytes, err := loadPair(crtPath, keyPath)
	if err != nil {
		return nil, err
	}
	if !c.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate", crtPath)
	}
	return &CA{Cert: c, Key: k, PEM: pemBytes, keyPath: keyPath}, nil
}

func loadPair(crtPath, keyPath string) (*x509.Certificate, crypto.Signer, []byte, error) {
	crtPEM, err := os.ReadFile(crtPath)
	if err != nil {
		return nil, nil, nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, nil, err
	}
	pair, err := tls.X509KeyPair(crtPEM, keyPEM)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s, %s: %w", crtPath, keyPath, err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, nil, fmt.Errorf("%s: not a signing key", keyPath)
	}
	return pair.Leaf, signer, crtPEM, nil
}

func randomSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n.Add(n, big.NewInt(1))
}

// CAPEM is the CA certificate, PEM (cortex auth ca).
func (s *Store) CAPEM() []byte { return s.ca.PEM }

// CAPool is a pool holding the CA (the listener's client CAs).
func (s *Store) CAPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.ca.Cert)
	return p
}

// ServerCertificate returns the TCP listener's certificate, signed by
// the CA, for hosts (names or addresses); it is made again when missing,
// within 30 days of expiry, not for every host, or not the CA's.
func (s *Store) ServerCertificate(hosts []string) (tls.Certificate, error) {
	crtPath, keyPath := filepath.Join(s.dir, "server.crt"), filepath.Join(s.dir, "server.key")
	if c, _, _, err := loadPair(crtPath, keyPath); err == nil && s.serverCertGood(c, hosts) {
		return tls.LoadX509KeyPair(crtPath, keyPath)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "cortexd", Organization: []string{"cortex"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.ca.Cert, key.Public(), s.ca.Key)
	if err != nil {
		return tls.Certificate{}, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})); err != nil {
		return tls.Certificate{}, err
	}
	if err := writeFileAtomic(crtPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		return tls.Certificate{}, err
	}
	return tls.LoadX509KeyPair(crtPath, keyPath)
}

func (s *Store) serverCertGood(c *x509.Certificate, hosts []string) bool {
	if time.Until(c.NotAfter) < 30*24*time.Hour || c.CheckSignatureFrom(s.ca.Cert) != nil {
		return false
	}
	for _, h := range hosts {
		if c.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// IssueCert signs the certificate request csrPEM (its key stays with the
// caller) as a client certificate for name, valid for ttl (0: one
// year), and records it. It returns the record and the certificate PEM.
func (s *Store) IssueCert(csrPEM []byte, name, role string, projects []string, ttl time.Duration) (Cert, []byte, error) {
	if err := CheckName(name); err != nil {
		return Cert{}, nil, err
	}
	r, err := checkBinding(role, projects)
	if err != nil {
		return Cert{}, nil, err
	}
	blk, _ := pem.Decode(csrPEM)
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		return Cert{}, nil, errdefs.New(errdefs.InvalidArgument, "not a PEM certificate request")
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		return Cert{}, nil, errdefs.New(errdefs.InvalidArgument, "certificate request: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return Cert{}, nil, errdefs.New(errdefs.InvalidArgument, "certificate request: %v", err)
	}
	if ttl <= 0 {
		ttl = 365 * 24 * time.Hour
	}
	now := s.now()
	serial := randomSerial()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"cortex"}, OrganizationalUnit: []string{"role:" + string(r)}},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.ca.Cert, csr.PublicKey, s.ca.Key)
	if err != nil {
		return Cert{}, nil, err
	}
	rec := Cert{Name: name, Serial: hex.EncodeToString(serial.Bytes()), Role: r, Projects: projects, IssuedAt: now.UTC(), ExpiresAt: tmpl.NotAfter.UTC()}
	s.mu.Lock()
	defer s.mu.Unlock()
	certs := append(slices.Clone(s.certs), rec)
	if err := writeJSON(filepath.Join(s.dir, "certs.json"), certs); err != nil {
		return Cert{}, nil, err
	}
	s.certs = certs
	return rec, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// Certs lists every certificate issued.
func (s *Store) Certs() []Cert {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.certs)
}

// RevokeCert revokes the certificate with serial ref (hex), or every
// live certificate named ref.
func (s *Store) RevokeCert(ref string) ([]Cert, error) {
	ref = strings.ToLower(strings.TrimPrefix(strings.ReplaceAll(ref, ":", ""), "0x"))
	s.mu.Lock()
	defer s.mu.Unlock()
	certs := slices.Clone(s.certs)
	var out []Cert
	for i, c := range certs {
		if c.RevokedAt.IsZero() && (c.Serial == ref || c.Name == ref) {
			certs[i].RevokedAt = s.now().UTC()
			out = append(out, certs[i])
		}
	}
	if len(out) == 0 {
		return nil, errdefs.WithHint(errdefs.New(errdefs.NotFound, "no live certificate with serial or name %q", ref), "cortex auth cert list")
	}
	if err := writeJSON(filepath.Join(s.dir, "certs.json"), certs); err != nil {
		return nil, err
	}
	s.certs = certs
	return out, nil
}

// AuthenticateCert finds the record of a client certificate the TLS
// handshake verified against the CA.
func (s *Store) AuthenticateCert(leaf *x509.Certificate, remote string) (Identity, bool, error) {
	serial := hex.EncodeToString(leaf.SerialNumber.Bytes())
	s.mu.RLock()
	idx := -1
	for i, c := range s.certs {
		if c.Serial == serial {
			idx = i
		}
	}
	var c Cert
	if idx >= 0 {
		c = s.certs[idx]
	}
	s.mu.RUnlock()
	switch {
	case idx < 0:
		return Identity{}, false, errdefs.New(errdefs.Unauthenticated, "client certificate serial %s was not issued by this daemon", serial)
	case !c.RevokedAt.IsZero():
		return Identity{}, false, errdefs.New(errdefs.Unauthenticated, "client certificate %q (serial %s) was revoked at %s", c.Name, serial, c.RevokedAt.Format(time.RFC3339))
	case leaf.Subject.CommonName != c.Name:
		return Identity{}, false, errdefs.New(errdefs.Unauthenticated, "client certificate serial %s names %q, issued to %q", serial, leaf.Subject.CommonName, c.Name)
	}
	newAddr := false
	if remote != "" && !slices.Contains(c.Addresses, remote) {
		newAddr = len(c.Addresses) > 0
		s.mu.Lock()
		certs := slices.Clone(s.certs)
		certs[idx].Addresses = appendAddress(certs[idx].Addresses, remote)
		if writeJSON(filepath.Join(s.dir, "certs.json"), certs) == nil {
			s.certs = certs
		}
		s.mu.Unlock()
	}
	return Identity{Name: "cert:" + c.Name, Auth: AuthCert, Credential: serial, UID: -1,
		Bindings: []Binding{{Role: c.Role, Projects: c.Projects}}}, newAddr, nil
}
