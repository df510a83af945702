package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/audit"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/events"
)

// Auditor appends audit entries (audit.Log).
type Auditor interface {
	Append(audit.Entry) (uint64, error)
}

// Projects tells the pipeline who owns a project.
type Projects interface {
	// Owner returns the uid that owns project, and whether it exists.
	Owner(ctx context.Context, project string) (uid int, exists bool, err error)
}

// Decoder reads the project a request's body names (a route whose
// target is FromBody). It may replace the request (a body read into a
// file it then points at); the handler gets what it returns.
type Decoder func(r *http.Request) (Target, *http.Request, error)

// Pipeline is the API's one request path, wrapped around the whole mux:
// authenticate (SO_PEERCRED on the unix socket; an API key or a client
// certificate over TLS) → rate limit (per identity) → decode the request
// (route, target project and agent, the body's project) → Authorize →
// the handler, with the caller in its context → audit, appended before
// the answer leaves (a failed append fails the request). Every route,
// stream and future surface the mux serves goes through it; a route
// missing from Routes is admin-only.
type Pipeline struct {
	Mux *http.ServeMux
	// NotFound answers requests no route matches (after authentication).
	NotFound http.Handler
	Routes   Table
	Store    *Store
	Local    *LocalRoles
	Limiter  *Limiter
	Audit    Auditor
	Projects Projects
	Decoders map[string]Decoder
	Events   *events.Stream
	Logger   *slog.Logger
	Now      func() time.Time

	// DeniedBurst and DeniedWindow: so many 403s from one identity
	// within the window raise a denied-burst anomaly (defaults 10, 1m).
	DeniedBurst  int
	DeniedWindow time.Duration

	once         sync.Once
	mu           sync.Mutex
	denied       map[string]*burst
	limited      map[string]*limitedSummary
	lastAuditErr time.Time
}

type burst struct {
	start    time.Time
	n        int
	reported bool
}

type limitedSummary struct {
	rec        audit.APIRecord
	last       time.Time
	suppressed int
}

func (p *Pipeline) init() {
	p.once.Do(func() {
		if p.Now == nil {
			p.Now = time.Now
		}
		if p.Logger == nil {
			p.Logger = slog.Default()
		}
		if p.DeniedBurst == 0 {
			p.DeniedBurst = 10
		}
		if p.DeniedWindow == 0 {
			p.DeniedWindow = time.Minute
		}
		p.denied = map[string]*burst{}
		p.limited = map[string]*limitedSummary{}
	})
}

// Caller is the authenticated identity of a request, for handlers:
// listings keep what Sees allows.
type Caller struct {
	Identity  Identity
	RequestID string
	// Peer is set on the unix socket.
	Peer     *PeerCred
	projects Projects
	ctx      context.Context

	mu     sync.Mutex
	owners map[string]int
}

type callerKey struct{}

// CallerFrom returns the request's caller; nil outside the pipeline
// (which sees nothing).
func CallerFrom(ctx context.Context) *Caller {
	c, _ := ctx.Value(callerKey{}).(*Caller)
	return c
}

// Remote reports whether the caller came over TCP.
func (c *Caller) Remote() bool { return c != nil && c.Peer == nil }

// Sees reports whether the caller may see project.
func (c *Caller) Sees(project string) bool {
	if c == nil {
		return false
	}
	needOwner := false
	for _, b := range c.Identity.Bindings {
		if b.Role.Level() < LevelRead {
			continue
		}
		if !b.Owned && b.matches(project) {
			return true
		}
		needOwner = needOwner || b.Owned
	}
	if !needOwner {
		return false
	}
	c.mu.Lock()
	owner, ok := c.owners[project]
	c.mu.Unlock()
	if !ok {
		uid, exists, err := c.projects.Owner(c.ctx, project)
		if err != nil || !exists {
			return false
		}
		owner = uid
		c.mu.Lock()
		if c.owners == nil {
			c.owners = map[string]int{}
		}
		c.owners[project] = owner
		c.mu.Unlock()
	}
	return Sees(c.Identity, project, owner)
}

// SeesOwned is Sees for a project whose owner the handler knows.
func (c *Caller) SeesOwned(project string, owner int) bool {
	return c != nil && Sees(c.Identity, project, owner)
}

// ServeHTTP runs the pipeline.
func (p *Pipeline) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.init()
	start := p.Now()
	rec := audit.APIRecord{RequestID: newRequestID(), Method: r.Method, Path: r.URL.Path, Remote: remoteOf(r)}
	w.Header().Set("X-Cortex-Request-Id", rec.RequestID)

	// 1. Authenticate.
	id, newAddr, err := p.authenticate(r)
	if err != nil {
		rec.Identity = "anonymous"
		if ok, wait := p.Limiter.Allow("addr:"+hostOf(r), p.Limiter.Unauthenticated(), start); !ok {
			p.refuseLimited(w, rec, wait)
			return
		}
		rec.Outcome, rec.Status, rec.Reason = "unauthenticated", http.StatusUnauthorized, err.Error()
		if p.appendOrFail(w, rec) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cortex"`)
			api.WriteError(w, http.StatusUnauthorized, errdefs.WithHint(errdefs.Wrap(errdefs.Unauthenticated, err),
				"send an API key (CORTEX_API_KEY) or a client certificate (CORTEX_CERT, CORTEX_KEY); see cortex auth"))
		}
		return
	}
	rec.Identity, rec.Auth, rec.Credential, rec.Role = id.Name, id.Auth, id.Credential, string(id.Role())
	if newAddr {
		p.anomaly(events.SecurityAnomalyDetail{Kind: events.AnomalyNewAddress, Identity: id.Name, Remote: rec.Remote,
			Message: id.Name + " was used from " + rec.Remote + " for the first time"})
	}

	// 2. Rate limit, per identity, before any work on the request.
	if ok, wait := p.Limiter.Allow(id.Name, p.Limiter.ForRole(id.Role()), start); !ok {
		p.refuseLimited(w, rec, wait)
		return
	}

	// 3. Decode: the route, its class and its target.
	h, pattern := p.Mux.Handler(r)
	class, _ := p.Routes.Lookup(pattern)
	escaped := r.URL.EscapedPath()
	vals, matched := pathValues(pattern, escaped)
	matched = matched && cleanPath(escaped) == escaped
	switch {
	case pattern == "":
		// No route: 404, or 405 for a path other methods take.
		class, h = Any(), p.NotFound
	case !matched:
		// A redirect to the clean path: nothing runs.
		class, pattern, vals = Any(), "", nil
	}
	rec.Route = pattern
	r.Pattern = pattern
	for k, v := range vals {
		r.SetPathValue(k, v)
	}
	t, err := targetOf(class, r, vals)
	if err != nil {
		p.refuse(w, rec, start, http.StatusBadRequest, err)
		return
	}
	if class.Target == FromBody {
		// The gate: may this identity act on any project at all? Only
		// then is the body read.
		if d := Authorize(id, Request{Route: pattern, Class: class, Target: Target{Pending: true}}); !d.Allow {
			p.deny(w, rec, start, id, d)
			return
		}
		dec := p.Decoders[pattern]
		if dec == nil {
			p.refuse(w, rec, start, http.StatusInternalServerError, errdefs.New(errdefs.Internal, "no decoder for %s", pattern))
			return
		}
		var r2 *http.Request
		if t, r2, err = dec(r); err != nil {
			p.refuse(w, rec, start, 0, err)
			return
		}
		if r2 != nil {
			r = r2
		}
	}
	rec.Project, rec.Agent = t.Project, t.Agent
	if t.Project != "" && p.Projects != nil {
		uid, exists, err := p.Projects.Owner(r.Context(), t.Project)
		if err != nil {
			p.refuse(w, rec, start, 0, err)
			return
		}
		t.Owner, t.Exists = uid, exists
	}

	// 4. Authorize.
	if d := Authorize(id, Request{Route: pattern, Class: class, Target: t}); !d.Allow {
		p.deny(w, rec, start, id, d)
		return
	}

	// 5. The handler, audited before its answer leaves.
	caller := &Caller{Identity: id, RequestID: rec.RequestID, projects: p.Projects}
	if peer, ok := PeerFrom(r.Context()); ok && r.TLS == nil {
		caller.Peer = &peer
	}
	ctx := context.WithValue(r.Context(), callerKey{}, caller)
	caller.ctx = ctx
	r = r.WithContext(ctx)
	if class.Mutates() || class.Stream {
		rec.Phase, rec.Outcome = "begin", "allowed"
		if !p.appendOrFail(w, rec) {
			return
		}
	}
	if class.Stream {
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		rec.Phase = "end"
		p.finish(&rec, sw.status(), start)
		if _, err := p.append(rec); err != nil {
			p.auditFailed(rec, err)
		}
		p.emit(rec)
		return
	}
	bw := newBufferedWriter()
	h.ServeHTTP(bw, r)
	rec.Phase = "done"
	if class.Mutates() {
		rec.Phase = "end"
	}
	p.finish(&rec, bw.code(), start)
	if _, err := p.append(rec); err != nil {
		p.auditFailed(rec, err)
		msg := "the audit log is unavailable, so the answer is withheld"
		if class.Mutates() {
			msg = "the audit log is unavailable: the request was carried out (its start is audited) but its outcome could not be recorded"
		}
		api.WriteError(w, http.StatusServiceUnavailable, errdefs.New(errdefs.Unavailable, "%s: %v", msg, err))
		return
	}
	bw.sendTo(w)
	p.emit(rec)
}

func (p *Pipeline) finish(rec *audit.APIRecord, status int, start time.Time) {
	rec.Status = status
	rec.Outcome = "ok"
	if status >= 400 {
		rec.Outcome = "error"
	}
	rec.DurationUS = p.Now().Sub(start).Microseconds()
}

// authenticate finds who is asking.
func (p *Pipeline) authenticate(r *http.Request) (Identity, bool, error) {
	bearer, hasBearer, err := bearerToken(r)
	if err != nil {
		return Identity{}, false, err
	}
	if r.TLS != nil {
		remote := hostOf(r)
		chains := r.TLS.VerifiedChains
		switch {
		case len(chains) > 0 && hasBearer:
			return Identity{}, false, errdefs.New(errdefs.Unauthenticated, "send either a client certificate or an API key, not both")
		case len(chains) > 0:
			return p.Store.AuthenticateCert(chains[0][0], remote)
		case hasBearer:
			return p.Store.AuthenticateKey(bearer, remote)
		}
		return Identity{}, false, errdefs.New(errdefs.Unauthenticated, "no credentials: the TCP listener needs an API key (Authorization: Bearer) or a client certificate")
	}
	peer, ok := PeerFrom(r.Context())
	if !ok {
		return Identity{}, false, errdefs.New(errdefs.Unauthenticated, "no peer credentials on the unix socket")
	}
	if hasBearer {
		return p.Store.AuthenticateKey(bearer, "")
	}
	return p.Local.Identity(peer.UID, peer.GID), false, nil
}

func bearerToken(r *http.Request) (string, bool, error) {
	hs := r.Header.Values("Authorization")
	if len(hs) == 0 {
		return "", false, nil
	}
	if len(hs) > 1 {
		return "", false, errdefs.New(errdefs.Unauthenticated, "more than one Authorization header")
	}
	tok, ok := strings.CutPrefix(hs[0], "Bearer ")
	if !ok || tok == "" || strings.TrimSpace(tok) != tok {
		return "", false, errdefs.New(errdefs.Unauthenticated, "the Authorization header must be \"Bearer <API key>\"")
	}
	return tok, true, nil
}

// targetOf reads the project and agent a route names from its path or
// query (the body's is the decoder's).
func targetOf(c Class, r *http.Request, vals map[string]string) (Target, error) {
	var t Target
	one := func(name string) (string, error) {
		vs := r.URL.Query()[name]
		if len(vs) > 1 {
			return "", errdefs.New(errdefs.InvalidArgument, "%s is given %d times; give it once", name, len(vs))
		}
		if len(vs) == 0 {
			return "", nil
		}
		return vs[0], nil
	}
	var err error
	switch c.Target {
	case FromPath:
		t.Project, t.Agent = vals["project"], vals["agent"]
	case FromQuery:
		if t.Project, err = one("project"); err != nil {
			return t, err
		}
		if t.Agent, err = one("agent"); err != nil {
			return t, err
		}
	case FromRef:
		ref, err := one("ref")
		if err != nil {
			return t, err
		}
		if p, a, ok := strings.Cut(ref, "/"); ok {
			t.Project, t.Agent = p, a
		}
	}
	return t, nil
}

// deny answers a refused request (403, or 404 for a project the
// identity may not see) and audits it.
func (p *Pipeline) deny(w http.ResponseWriter, rec audit.APIRecord, start time.Time, id Identity, d Decision) {
	rec.Phase, rec.Outcome, rec.Status, rec.Reason = "refused", d.Outcome(), d.Status, d.Reason
	rec.DurationUS = p.Now().Sub(start).Microseconds()
	if !p.appendOrFail(w, rec) {
		return
	}
	if d.Status == http.StatusForbidden {
		p.noteDenied(id, rec)
	}
	cat := errdefs.PermissionDenied
	if d.Status == http.StatusNotFound {
		cat = errdefs.NotFound
	}
	api.WriteError(w, d.Status, &errdefs.Error{Cat: cat, Msg: d.Reason})
	p.emit(rec)
}

// refuse answers a request that failed before its handler (a bad
// request, a body that does not decode) and audits it.
func (p *Pipeline) refuse(w http.ResponseWriter, rec audit.APIRecord, start time.Time, status int, err error) {
	if status == 0 {
		status = errdefs.HTTPStatus(errdefs.CategoryOf(err))
	}
	rec.Phase, rec.Outcome, rec.Status, rec.Reason = "refused", "error", status, err.Error()
	rec.DurationUS = p.Now().Sub(start).Microseconds()
	if p.appendOrFail(w, rec) {
		api.WriteError(w, status, err)
		p.emit(rec)
	}
}

// refuseLimited answers 429 with Retry-After. Rate-limited requests are
// audited as one entry per identity per second, with the count.
func (p *Pipeline) refuseLimited(w http.ResponseWriter, rec audit.APIRecord, wait time.Duration) {
	now := p.Now()
	rec.Phase, rec.Outcome, rec.Status, rec.Reason = "refused", "limited", http.StatusTooManyRequests, "rate limit of role "+rec.Role
	p.mu.Lock()
	ls := p.limited[rec.Identity]
	write := ls == nil || now.Sub(ls.last) >= time.Second
	if write {
		rec.Count = 1
		if ls != nil {
			rec.Count += ls.suppressed
		}
		if len(p.limited) > 4096 {
			p.limited = map[string]*limitedSummary{}
		}
		p.limited[rec.Identity] = &limitedSummary{rec: rec, last: now}
	} else {
		ls.suppressed++
		ls.rec = rec
	}
	p.mu.Unlock()
	if write {
		if _, err := p.append(rec); err != nil {
			p.auditFailed(rec, err)
		}
	}
	w.Header().Set("Retry-After", strconv.Itoa(retryAfter(wait)))
	api.WriteError(w, http.StatusTooManyRequests, errdefs.WithHint(errdefs.New(errdefs.RateLimited, "too many requests from %s", rec.Identity),
		"retry after "+strconv.Itoa(retryAfter(wait))+"s"))
}

// FlushLimited writes the counts of rate-limited requests not yet
// audited (call it every few seconds, and at shutdown).
func (p *Pipeline) FlushLimited() {
	p.init()
	now := p.Now()
	p.mu.Lock()
	var recs []audit.APIRecord
	for k, ls := range p.limited {
		if now.Sub(ls.last) < time.Second {
			continue
		}
		if ls.suppressed > 0 {
			r := ls.rec
			r.Count = ls.suppressed
			recs = append(recs, r)
		}
		delete(p.limited, k)
	}
	p.mu.Unlock()
	for _, r := range recs {
		if _, err := p.append(r); err != nil {
			p.auditFailed(r, err)
		}
	}
}

// Run flushes rate-limit summaries until ctx is done.
func (p *Pipeline) Run(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			p.FlushLimited()
			return
		case <-t.C:
			p.FlushLimited()
		}
	}
}

func (p *Pipeline) append(rec audit.APIRecord) (uint64, error) {
	return p.Audit.Append(audit.Entry{Kind: audit.KindAPI, API: &rec})
}

// appendOrFail audits rec; when that fails it answers 503 and returns
// false: nothing unaudited happens.
func (p *Pipeline) appendOrFail(w http.ResponseWriter, rec audit.APIRecord) bool {
	if _, err := p.append(rec); err != nil {
		p.auditFailed(rec, err)
		api.WriteError(w, http.StatusServiceUnavailable, errdefs.WithHint(errdefs.New(errdefs.Unavailable, "the audit log is unavailable, so the request was refused: %v", err),
			"see the daemon's log; requests are refused until the audit log works again"))
		return false
	}
	return true
}

func (p *Pipeline) auditFailed(rec audit.APIRecord, err error) {
	p.Logger.Error("audit append failed", "identity", rec.Identity, "route", rec.Route, "err", err)
	p.mu.Lock()
	now := p.Now()
	quiet := now.Sub(p.lastAuditErr) < 10*time.Second
	if !quiet {
		p.lastAuditErr = now
	}
	p.mu.Unlock()
	if !quiet {
		p.anomaly(events.SecurityAnomalyDetail{Kind: events.AnomalyAuditFailure, Identity: rec.Identity, Remote: rec.Remote,
			Message: "an audit append failed, so a request was refused: " + err.Error()})
	}
}

// noteDenied counts 403s per identity and raises a denied-burst anomaly
// once per window when they pass DeniedBurst.
func (p *Pipeline) noteDenied(id Identity, rec audit.APIRecord) {
	now := p.Now()
	p.mu.Lock()
	b := p.denied[id.Name]
	if b == nil || now.Sub(b.start) > p.DeniedWindow {
		if len(p.denied) > 4096 {
			p.denied = map[string]*burst{}
		}
		b = &burst{start: now}
		p.denied[id.Name] = b
	}
	b.n++
	fire := b.n >= p.DeniedBurst && !b.reported
	if fire {
		b.reported = true
	}
	n := b.n
	p.mu.Unlock()
	if fire {
		p.anomaly(events.SecurityAnomalyDetail{Kind: events.AnomalyDeniedBurst, Identity: id.Name, Remote: rec.Remote, Count: n, Window: p.DeniedWindow,
			Message: id.Name + " was refused " + strconv.Itoa(n) + " requests within " + p.DeniedWindow.String()})
	}
}

func (p *Pipeline) anomaly(d events.SecurityAnomalyDetail) {
	p.Logger.Warn("security anomaly", "kind", d.Kind, "identity", d.Identity, "remote", d.Remote, "message", d.Message)
	if p.Events != nil {
		p.Events.Emit(events.Event{Type: events.SecurityAnomaly, Detail: d})
	}
}

// emit puts the request on the event stream (api.request) for metrics
// and alerts; the audit log has it already.
func (p *Pipeline) emit(rec audit.APIRecord) {
	p.Logger.Debug("api", "method", rec.Method, "path", rec.Path, "identity", rec.Identity, "status", rec.Status, "outcome", rec.Outcome, "took_us", rec.DurationUS)
	if p.Events == nil {
		return
	}
	p.Events.Emit(events.Event{Type: events.APIRequest, Project: rec.Project, Agent: rec.Agent, Detail: events.APIRequestDetail{
		Identity: rec.Identity, Role: rec.Role, Method: rec.Method, Route: rec.Route, Target: target(rec), Status: rec.Status, Outcome: rec.Outcome, Remote: rec.Remote}})
}

func target(rec audit.APIRecord) string {
	if rec.Agent != "" {
		return rec.Project + "/" + rec.Agent
	}
	return rec.Project
}

func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// remoteOf names the client: its TCP address, or unix:uid=N,pid=M.
func remoteOf(r *http.Request) string {
	if r.TLS != nil {
		return r.RemoteAddr
	}
	if p, ok := PeerFrom(r.Context()); ok {
		return "unix:uid=" + strconv.Itoa(p.UID) + ",pid=" + strconv.Itoa(p.PID)
	}
	return "unix"
}

// hostOf is the client's IP over TCP ("" on the unix socket).
func hostOf(r *http.Request) string {
	if r.TLS == nil {
		return ""
	}
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

// statusWriter passes a stream through, noting its status.
type statusWriter struct {
	http.ResponseWriter
	st int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.st == 0 {
		s.st = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.st == 0 {
		s.st = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Flush() {
	if s.st == 0 {
		s.st = http.StatusOK
	}
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) status() int {
	if s.st == 0 {
		return http.StatusOK
	}
	return s.st
}

// bufferedWriter holds an answer until it is audited.
type bufferedWriter struct {
	h   http.Header
	st  int
	buf bytes.Buffer
}

func newBufferedWriter() *bufferedWriter { return &bufferedWriter{h: http.Header{}} }

func (b *bufferedWriter) Header() http.Header { return b.h }

func (b *bufferedWriter) WriteHeader(code int) {
	if b.st == 0 {
		b.st = code
	}
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.st == 0 {
		b.st = http.StatusOK
	}
	return b.buf.Write(p)
}

func (b *bufferedWriter) code() int {
	if b.st == 0 {
		return http.StatusOK
	}
	return b.st
}

func (b *bufferedWriter) sendTo(w http.ResponseWriter) {
	for k, v := range b.h {
		w.Header()[k] = v
	}
	w.WriteHeader(b.code())
	_, _ = w.Write(b.buf.Bytes())
}
