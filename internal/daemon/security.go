package daemon

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/audit"
	"github.com/cortexrt/cortex/internal/auth"
	"github.com/cortexrt/cortex/internal/bundle"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/events"
	"github.com/cortexrt/cortex/internal/logkey"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/store"
)

// openSecurity opens the audit log (and starts recording the event
// stream into it) and the auth store, and builds the API pipeline.
func (d *Daemon) openSecurity() error {
	alog := d.log.With(logkey.Subsystem, "audit")
	var err error
	d.audit, err = audit.Open(audit.Options{
		Dir:                filepath.Join(d.paths.LibDir, "audit"),
		SegmentSize:        int64(d.cfg.Audit.SegmentSize),
		CheckpointInterval: d.cfg.Audit.CheckpointInterval,
		Fsync:              d.cfg.Audit.Fsync,
		Logger:             alog,
	})
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	rec := audit.NewRecorder(d.audit, d.events, d.cfg.Audit.DenialWindow, alog)
	d.goBG(rec.Run)
	for _, p := range d.audit.Damaged() {
		d.events.Emit(events.Event{Type: events.SecurityAnomaly, Detail: events.SecurityAnomalyDetail{Kind: events.AnomalyAuditDamaged,
			Message: "the audit log's newest segment did not verify at start (a new segment was begun): " + p}})
	}
	if d.authStore, err = auth.OpenStore(filepath.Join(d.paths.LibDir, "auth")); err != nil {
		return err
	}
	local, err := auth.NewLocalRoles(d.cfg.API.LocalRoles)
	if err != nil {
		return errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("%s: %w", d.paths.ConfigFile, err))
	}
	d.pipeline = &auth.Pipeline{
		Routes:   auth.Routes,
		Store:    d.authStore,
		Local:    local,
		Limiter:  auth.NewLimiter(d.cfg.API.RateLimits, d.cfg.API.MaxLimiters),
		Audit:    d.audit,
		Projects: projectOwners{d.store},
		Decoders: map[string]auth.Decoder{"POST /v1/projects": d.decodeRun},
		Events:   d.events,
		Logger:   d.log.With(logkey.Subsystem, "api"),
	}
	d.goBG(d.pipeline.Run)
	return nil
}

// closeSecurity closes the audit log, once the recorder has stopped.
func (d *Daemon) closeSecurity() {
	if d.audit != nil {
		if err := d.audit.Close(); err != nil {
			d.log.Error("close the audit log", logkey.Err, err)
		}
	}
}

// projectOwners tells the pipeline who owns a project.
type projectOwners struct{ s *store.Store }

func (p projectOwners) Owner(ctx context.Context, name string) (int, bool, error) {
	pr, err := p.s.GetProject(ctx, name)
	if errdefs.IsNotFound(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return pr.OwnerUID, true, nil
}

// upload is a bundle the run decoder received, and the project its
// manifest names (what was authorized).
type upload struct {
	path    string
	project string
}

type uploadKey struct{}

// decodeRun is the decoder of POST /v1/projects: it receives the bundle
// into a root-only file and reads the project its manifest names, which
// the pipeline then authorizes. The file is removed when the request
// ends.
//
// Over TCP a source directory means nothing (it is a path on the
// caller's machine): a remote run is a bundle run, its write grants
// under the daemon's data directory, so the header is refused.
func (d *Daemon) decodeRun(r *http.Request) (auth.Target, *http.Request, error) {
	if r.TLS != nil && r.Header.Get(api.HeaderSourceDir) != "" {
		return auth.Target{}, nil, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "%s: a remote caller's directory is not on this host", api.HeaderSourceDir),
			"run the project as a bundle: a remote cortex run DIR sends none (write grants then live under the daemon's data directory)")
	}
	if err := d.walls.refuseMissing(); err != nil {
		return auth.Target{}, nil, err
	}
	tmp, err := os.CreateTemp(filepath.Join(d.paths.LibDir, "tmp"), "upload-*.cortex")
	if err != nil {
		return auth.Target{}, nil, err
	}
	path := tmp.Name()
	context.AfterFunc(r.Context(), func() { os.Remove(path) })
	n, err := io.Copy(tmp, io.LimitReader(r.Body, maxUpload+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return auth.Target{}, nil, fmt.Errorf("receive bundle: %w", err)
	}
	if n > maxUpload {
		return auth.Target{}, nil, errdefs.New(errdefs.InvalidArgument, "bundle larger than %d GiB", maxUpload>>30)
	}
	name := r.Header.Get(api.HeaderFilename)
	if name == "" {
		name = "bundle"
	}
	b, err := bundle.Open(path)
	if err != nil {
		return auth.Target{}, nil, &errdefs.Error{Cat: errdefs.CategoryOf(err), Msg: strings.ReplaceAll(err.Error(), path, name), Hint: errdefs.HintOf(err)}
	}
	m, err := manifest.Parse(strings.NewReader(string(b.Manifest())), "cortex.yaml")
	b.Close()
	if err != nil {
		return auth.Target{}, nil, errdefs.Wrap(errdefs.InvalidArgument, err)
	}
	if m.Project == "" {
		return auth.Target{}, nil, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "cortex.yaml: project: missing"), "add project: my-project (lowercase letters, digits and '-')")
	}
	r2 := r.WithContext(context.WithValue(r.Context(), uploadKey{}, &upload{path: path, project: m.Project}))
	return auth.Target{Project: m.Project}, r2, nil
}

// owner is who a new project belongs to: the caller's uid and gid on
// the unix socket (whatever credential it used); root's for a caller
// over TCP, whose uid means nothing here (see decodeRun).
func owner(ctx context.Context) (uid, gid int) {
	if c := auth.CallerFrom(ctx); c != nil && c.Peer != nil {
		return c.Peer.UID, c.Peer.GID
	}
	return 0, 0
}

// listenTLS opens the TCP listener (api.listen): TLS 1.3 only, the
// configured certificate or one the daemon's CA signs, client
// certificates verified against the CA when given. The address bound is
// written to run/cortex/api.addr.
func (d *Daemon) listenTLS() (net.Listener, error) {
	addr := d.cfg.API.Listen
	var cert tls.Certificate
	var err error
	if d.cfg.API.TLS.Cert != "" {
		cert, err = tls.LoadX509KeyPair(d.cfg.API.TLS.Cert, d.cfg.API.TLS.Key)
	} else {
		cert, err = d.authStore.ServerCertificate(serverHosts(addr, d.cfg.API.TLS.Hosts))
	}
	if err != nil {
		return nil, fmt.Errorf("api.tls: %w", err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    d.authStore.CAPool(),
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("api.listen %s: %w", addr, err)
	}
	bound := ln.Addr().String()
	if err := os.WriteFile(filepath.Join(d.paths.RunDir, "api.addr"), []byte(bound+"\n"), 0o644); err == nil {
		_ = os.Chmod(filepath.Join(d.paths.RunDir, "api.addr"), 0o644)
	}
	d.log.Info("cortexd serving over TLS", "addr", bound)
	return tls.NewListener(ln, cfg), nil
}

// serverHosts are the names the generated server certificate is for.
func serverHosts(listen string, extra []string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, _, err := net.SplitHostPort(listen); err == nil && h != "" {
		if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
			hosts = append(hosts, h)
		}
	}
	if hn, err := os.Hostname(); err == nil && hn != "" {
		hosts = append(hosts, hn)
	}
	hosts = append(hosts, extra...)
	seen := map[string]bool{}
	out := hosts[:0]
	for _, h := range hosts {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

// The handlers of /v1/auth and /v1/audit.

func (d *Daemon) getWhoami(w http.ResponseWriter, r *http.Request) error {
	c := auth.CallerFrom(r.Context())
	out := api.AuthWhoami{Identity: c.Identity.Name, Auth: c.Identity.Auth, Credential: c.Identity.Credential, Role: string(c.Identity.Role()), Remote: c.Remote(), Bindings: []api.AuthBinding{}}
	for _, b := range c.Identity.Bindings {
		out.Bindings = append(out.Bindings, api.AuthBinding{Role: string(b.Role), Projects: b.Projects, Owned: b.Owned})
	}
	api.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (d *Daemon) getCA(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(d.authStore.CAPEM())
	return nil
}

func credState(revoked, expires time.Time) string {
	switch {
	case !revoked.IsZero():
		return "revoked"
	case !expires.IsZero() && !time.Now().Before(expires):
		return "expired"
	}
	return "live"
}

func apiKey(k auth.Key) api.AuthKey {
	return api.AuthKey{Name: k.Name, ID: k.ID, Role: string(k.Role), Projects: k.Projects, State: credState(k.RevokedAt, k.ExpiresAt),
		CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt, Addresses: k.Addresses}
}

func apiCert(c auth.Cert) api.AuthCert {
	return api.AuthCert{Name: c.Name, Serial: c.Serial, Role: string(c.Role), Projects: c.Projects, State: credState(c.RevokedAt, c.ExpiresAt),
		IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt, RevokedAt: c.RevokedAt, Addresses: c.Addresses}
}

func (d *Daemon) getKeys(w http.ResponseWriter, r *http.Request) error {
	out := []api.AuthKey{}
	for _, k := range d.authStore.Keys() {
		out = append(out, apiKey(k))
	}
	api.WriteJSON(w, http.StatusOK, out)
	return nil
}

// decodeJSON reads a small JSON body strictly.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errdefs.New(errdefs.InvalidArgument, "request body: %v", err)
	}
	return nil
}

func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, errdefs.New(errdefs.InvalidArgument, "ttl %q is not a positive duration", s)
	}
	return d, nil
}

func (d *Daemon) postKey(w http.ResponseWriter, r *http.Request) error {
	var in api.AuthKeyCreate
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	ttl, err := parseTTL(in.TTL)
	if err != nil {
		return err
	}
	k, secret, err := d.authStore.CreateKey(in.Name, in.Role, in.Projects, ttl)
	if err != nil {
		return err
	}
	d.log.Info("api key created", "name", k.Name, "id", k.ID, "role", k.Role, "projects", k.Projects, "by", auth.CallerFrom(r.Context()).Identity.Name)
	api.WriteJSON(w, http.StatusCreated, api.AuthKeyCreated{AuthKey: apiKey(k), Secret: secret})
	return nil
}

func (d *Daemon) deleteKey(w http.ResponseWriter, r *http.Request) error {
	k, err := d.authStore.RevokeKey(r.PathValue("name"))
	if err != nil {
		return err
	}
	d.log.Info("api key revoked", "name", k.Name, "id", k.ID, "by", auth.CallerFrom(r.Context()).Identity.Name)
	api.WriteJSON(w, http.StatusOK, apiKey(k))
	return nil
}

func (d *Daemon) getCerts(w http.ResponseWriter, r *http.Request) error {
	out := []api.AuthCert{}
	for _, c := range d.authStore.Certs() {
		out = append(out, apiCert(c))
	}
	api.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (d *Daemon) postCert(w http.ResponseWriter, r *http.Request) error {
	var in api.AuthCertIssue
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	ttl, err := parseTTL(in.TTL)
	if err != nil {
		return err
	}
	c, pemBytes, err := d.authStore.IssueCert([]byte(in.CSR), in.Name, in.Role, in.Projects, ttl)
	if err != nil {
		return err
	}
	d.log.Info("client certificate issued", "name", c.Name, "serial", c.Serial, "role", c.Role, "projects", c.Projects, "by", auth.CallerFrom(r.Context()).Identity.Name)
	api.WriteJSON(w, http.StatusCreated, api.AuthCertIssued{AuthCert: apiCert(c), Certificate: string(pemBytes), CA: string(d.authStore.CAPEM())})
	return nil
}

func (d *Daemon) deleteCert(w http.ResponseWriter, r *http.Request) error {
	cs, err := d.authStore.RevokeCert(r.PathValue("serial"))
	if err != nil {
		return err
	}
	out := []api.AuthCert{}
	for _, c := range cs {
		d.log.Info("client certificate revoked", "name", c.Name, "serial", c.Serial, "by", auth.CallerFrom(r.Context()).Identity.Name)
		out = append(out, apiCert(c))
	}
	api.WriteJSON(w, http.StatusOK, out)
	return nil
}

func auditFilter(q url.Values) (audit.Filter, error) {
	f := audit.Filter{Identity: q.Get("identity"), Project: q.Get("project")}
	for _, k := range []struct {
		name string
		t    *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if s := q.Get(k.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return f, errdefs.New(errdefs.InvalidArgument, "%s %q is not an RFC 3339 time", k.name, s)
			}
			*k.t = t
		}
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return f, errdefs.New(errdefs.InvalidArgument, "limit %q is not a number", s)
		}
		f.Limit = n
	}
	for _, k := range q["kind"] {
		for _, s := range strings.Split(k, ",") {
			switch kind := audit.Kind(s); kind {
			case audit.KindAPI, audit.KindEvent, audit.KindCheckpoint, audit.KindSegment, audit.KindNotice:
				f.Kinds = append(f.Kinds, kind)
			default:
				return f, errdefs.New(errdefs.InvalidArgument, "kind %q: use api, event, notice, checkpoint or segment", s)
			}
		}
	}
	return f, nil
}

func (d *Daemon) getAudit(w http.ResponseWriter, r *http.Request) error {
	f, err := auditFilter(r.URL.Query())
	if err != nil {
		return err
	}
	es, err := d.audit.List(f)
	if err != nil {
		return err
	}
	if es == nil {
		es = []audit.Entry{}
	}
	api.WriteJSON(w, http.StatusOK, es)
	return nil
}

func (d *Daemon) getAuditCheckpoint(w http.ResponseWriter, r *http.Request) error {
	cp, err := d.audit.Checkpoint()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(cp)
	return nil
}

func (d *Daemon) getAuditFiles(w http.ResponseWriter, r *http.Request) error {
	segs, err := d.audit.Segments()
	if err != nil {
		return err
	}
	out := []api.AuditFile{{Name: audit.VerifierFile}}
	for _, s := range segs {
		out = append(out, api.AuditFile{Name: s.Name, Size: s.Size})
	}
	api.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (d *Daemon) getAuditFile(w http.ResponseWriter, r *http.Request) error {
	data, err := d.audit.ReadFile(r.PathValue("name"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errdefs.New(errdefs.NotFound, "no audit file %q", r.PathValue("name"))
		}
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(data)
	return nil
}
