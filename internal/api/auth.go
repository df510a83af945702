package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/cortexrt/cortex/internal/audit"
)

// The API's security surface (admin only, except whoami and ca):
//
//	GET    /v1/auth/whoami          AuthWhoami (any identity)
//	GET    /v1/auth/ca              the CA certificate, PEM (any identity)
//	GET    /v1/auth/keys            []AuthKey
//	POST   /v1/auth/keys            AuthKeyCreate; AuthKeyCreated (the secret, once)
//	DELETE /v1/auth/keys/{name}     AuthKey (revoked)
//	GET    /v1/auth/certs           []AuthCert
//	POST   /v1/auth/certs           AuthCertIssue (a CSR); AuthCertIssued
//	DELETE /v1/auth/certs/{serial}  []AuthCert (revoked; a name revokes all of its)
//	GET    /v1/audit                ?since=&until=&identity=&project=&kind=&limit=  []AuditEntry
//	GET    /v1/audit/checkpoint     a signed checkpoint of the log's head (text)
//	GET    /v1/audit/files          []AuditFile
//	GET    /v1/audit/files/{name}   a file of the audit directory, as written

// AuthBinding is a role on projects.
type AuthBinding struct {
	Role     string   `json:"role"`
	Projects []string `json:"projects,omitempty"`
	// Owned: the projects the identity runs (a local user's default).
	Owned bool `json:"owned,omitempty"`
}

// AuthWhoami answers GET /v1/auth/whoami.
type AuthWhoami struct {
	Identity   string        `json:"identity"`
	Auth       string        `json:"auth"`
	Credential string        `json:"credential,omitempty"`
	Role       string        `json:"role"`
	Bindings   []AuthBinding `json:"bindings"`
	Remote     bool          `json:"remote"`
}

// AuthKey is an API key (never its secret).
type AuthKey struct {
	Name      string    `json:"name"`
	ID        string    `json:"id"`
	Role      string    `json:"role"`
	Projects  []string  `json:"projects,omitempty"`
	State     string    `json:"state"` // live, expired, revoked
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	Addresses []string  `json:"addresses,omitempty"`
}

// AuthKeyCreate is the body of POST /v1/auth/keys. TTL is a Go duration
// ("720h"); "" never expires.
type AuthKeyCreate struct {
	Name     string   `json:"name"`
	Role     string   `json:"role"`
	Projects []string `json:"projects,omitempty"`
	TTL      string   `json:"ttl,omitempty"`
}

// AuthKeyCreated answers it: the secret is shown this once.
type AuthKeyCreated struct {
	AuthKey
	Secret string `json:"secret"`
}

// AuthCert is a client certificate the daemon's CA issued.
type AuthCert struct {
	Name      string    `json:"name"`
	Serial    string    `json:"serial"`
	Role      string    `json:"role"`
	Projects  []string  `json:"projects,omitempty"`
	State     string    `json:"state"` // live, expired, revoked
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	Addresses []string  `json:"addresses,omitempty"`
}

// AuthCertIssue is the body of POST /v1/auth/certs: a certificate
// request (PEM) whose key stays with the caller.
type AuthCertIssue struct {
	Name     string   `json:"name"`
	Role     string   `json:"role"`
	Projects []string `json:"projects,omitempty"`
	TTL      string   `json:"ttl,omitempty"`
	CSR      string   `json:"csr"`
}

// AuthCertIssued answers it.
type AuthCertIssued struct {
	AuthCert
	Certificate string `json:"certificate"` // PEM
	CA          string `json:"ca"`          // PEM
}

// AuditEntry is one entry of the audit log, as the log stores it
// (internal/audit: versioned, canonical JSON).
type AuditEntry = audit.Entry

// AuditFile names a file of the audit directory.
type AuditFile struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// Whoami asks who the daemon takes the caller for.
func (c *Client) Whoami(ctx context.Context) (AuthWhoami, error) {
	var out AuthWhoami
	return out, c.Do(ctx, http.MethodGet, "/auth/whoami", nil, nil, &out)
}

// raw GETs path and returns the body.
func (c *Client) raw(ctx context.Context, path string) ([]byte, error) {
	resp, err := c.send(ctx, http.MethodGet, path, nil, nil, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

// CA returns the daemon's CA certificate (PEM).
func (c *Client) CA(ctx context.Context) ([]byte, error) { return c.raw(ctx, "/auth/ca") }

// Keys lists the API keys.
func (c *Client) Keys(ctx context.Context) ([]AuthKey, error) {
	var out []AuthKey
	return out, c.Do(ctx, http.MethodGet, "/auth/keys", nil, nil, &out)
}

// CreateKey makes an API key; the answer holds its secret, once.
func (c *Client) CreateKey(ctx context.Context, in AuthKeyCreate) (AuthKeyCreated, error) {
	var out AuthKeyCreated
	return out, c.Do(ctx, http.MethodPost, "/auth/keys", nil, jsonBody(in), &out)
}

// RevokeKey revokes the live key named name.
func (c *Client) RevokeKey(ctx context.Context, name string) (AuthKey, error) {
	var out AuthKey
	return out, c.Do(ctx, http.MethodDelete, "/auth/keys/"+url.PathEscape(name), nil, nil, &out)
}

// Certs lists the client certificates issued.
func (c *Client) Certs(ctx context.Context) ([]AuthCert, error) {
	var out []AuthCert
	return out, c.Do(ctx, http.MethodGet, "/auth/certs", nil, nil, &out)
}

// IssueCert has the daemon's CA sign a certificate request.
func (c *Client) IssueCert(ctx context.Context, in AuthCertIssue) (AuthCertIssued, error) {
	var out AuthCertIssued
	return out, c.Do(ctx, http.MethodPost, "/auth/certs", nil, jsonBody(in), &out)
}

// RevokeCert revokes a certificate by serial, or every one of a name.
func (c *Client) RevokeCert(ctx context.Context, ref string) ([]AuthCert, error) {
	var out []AuthCert
	return out, c.Do(ctx, http.MethodDelete, "/auth/certs/"+url.PathEscape(ref), nil, nil, &out)
}

// Audit lists audit entries (query: since, until, identity, project,
// kind, limit).
func (c *Client) Audit(ctx context.Context, q url.Values) ([]AuditEntry, error) {
	var out []AuditEntry
	return out, c.Do(ctx, http.MethodGet, "/audit", q, nil, &out)
}

// AuditCheckpoint returns a signed checkpoint of the audit log's head.
func (c *Client) AuditCheckpoint(ctx context.Context) ([]byte, error) {
	return c.raw(ctx, "/audit/checkpoint")
}

// AuditFiles lists the audit directory's files (not the signing key).
func (c *Client) AuditFiles(ctx context.Context) ([]AuditFile, error) {
	var out []AuditFile
	return out, c.Do(ctx, http.MethodGet, "/audit/files", nil, nil, &out)
}

// AuditFile returns one file of the audit directory, as written.
func (c *Client) AuditFile(ctx context.Context, name string) ([]byte, error) {
	return c.raw(ctx, "/audit/files/"+url.PathEscape(name))
}
