package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/audit"
	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/events"
)

type fakeProjects map[string]int

func (f fakeProjects) Owner(_ context.Context, p string) (int, bool, error) {
	uid, ok := f[p]
	return uid, ok, nil
}

// harness is a pipeline around a small mux of real route patterns whose
// handlers record what they were asked.
type harness struct {
	p      *Pipeline
	log    *audit.Log
	store  *Store
	events *events.Stream

	mu      sync.Mutex
	calls   []string
	decoded int
}

func (h *harness) called(s string) {
	h.mu.Lock()
	h.calls = append(h.calls, s)
	h.mu.Unlock()
}

func (h *harness) Calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

func newHarness(t testing.TB, limits config.RateLimits) *harness {
	t.Helper()
	h := &harness{events: events.New()}
	var err error
	if h.store, err = OpenStore(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if h.log, err = audit.Open(audit.Options{Dir: t.TempDir(), Fsync: false}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.log.Close() })
	projects := fakeProjects{"ci-x": 1000, "prod-y": 0}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/projects", func(w http.ResponseWriter, r *http.Request) {
		c := CallerFrom(r.Context())
		out := []string{}
		for _, p := range []string{"ci-x", "prod-y"} {
			if c.Sees(p) {
				out = append(out, p)
			}
		}
		api.WriteJSON(w, 200, out)
	})
	mux.HandleFunc("POST /v1/agents/{project}/{agent}/kill", func(w http.ResponseWriter, r *http.Request) {
		// The begin entry is in the log before the handler runs.
		es, _ := h.log.List(audit.Filter{Kinds: []audit.Kind{audit.KindAPI}, Limit: 1})
		if len(es) != 1 || es[0].API.Phase != "begin" || es[0].API.Project != r.PathValue("project") {
			t.Errorf("handler ran without its begin entry: %+v", es)
		}
		h.called("kill " + r.PathValue("project") + "/" + r.PathValue("agent"))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /v1/logs", func(w http.ResponseWriter, r *http.Request) {
		h.called("logs " + r.URL.Query().Get("project"))
		s := api.NewSSEWriter(w)
		_ = s.Send("log", map[string]string{"m": "hello"})
		s.Flush()
	})
	mux.HandleFunc("POST /v1/projects", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.called("run " + string(b))
		api.WriteJSON(w, 201, map[string]string{"ok": "1"})
	})
	mux.HandleFunc("GET /v1/unclassified", func(w http.ResponseWriter, r *http.Request) { h.called("unclassified") })
	mux.HandleFunc("GET /v1/version", func(w http.ResponseWriter, r *http.Request) { api.WriteJSON(w, 200, "v") })
	local, _ := NewLocalRoles(nil)
	if limits == (config.RateLimits{}) {
		limits = config.DefaultAPI().RateLimits
	}
	h.p = &Pipeline{
		Mux: mux, NotFound: api.NotFound(mux), Routes: Routes, Store: h.store, Local: local,
		Limiter: NewLimiter(limits, 64), Audit: h.log, Projects: projects, Events: h.events,
		Decoders: map[string]Decoder{"POST /v1/projects": func(r *http.Request) (Target, *http.Request, error) {
			h.mu.Lock()
			h.decoded++
			h.mu.Unlock()
			var body struct{ Project string }
			b, _ := io.ReadAll(r.Body)
			if err := json.Unmarshal(b, &body); err != nil {
				return Target{}, nil, errdefs.New(errdefs.InvalidArgument, "bad body: %v", err)
			}
			r2 := r.Clone(r.Context())
			r2.Body = io.NopCloser(strings.NewReader(string(b)))
			return Target{Project: body.Project}, r2, nil
		}},
	}
	return h
}

// who sends a request as someone: "uid:N" on the unix socket, "key:SECRET"
// or "cert" (with cert) over TLS, "tls" over TLS with nothing.
type who struct {
	uid    int
	key    string
	cert   *x509.Certificate
	tls    bool
	remote string
}

func (h *harness) do(t *testing.T, as who, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := h.request(t, as, httptest.NewRequest(method, "http://cortexd"+target, strings.NewReader(body)))
	w := httptest.NewRecorder()
	h.p.ServeHTTP(w, r)
	return w
}

// request makes r come from as.
func (h *harness) request(_ testing.TB, as who, r *http.Request) *http.Request {
	if as.tls || as.key != "" || as.cert != nil {
		r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13}
		r.RemoteAddr = "192.0.2.1:40000"
		if as.remote != "" {
			r.RemoteAddr = as.remote
		}
		if as.cert != nil {
			r.TLS.VerifiedChains = [][]*x509.Certificate{{as.cert}}
		}
	} else if as.uid >= 0 {
		r = r.WithContext(WithPeer(r.Context(), PeerCred{PID: 1, UID: as.uid, GID: as.uid}))
	}
	if as.key != "" {
		r.Header.Set("Authorization", "Bearer "+as.key)
	}
	return r
}

// withCaller is the context a handler gets from the pipeline.
func withCaller(r *http.Request, id Identity) context.Context {
	c := &Caller{Identity: id, projects: fakeProjects{}}
	ctx := context.WithValue(r.Context(), callerKey{}, c)
	c.ctx = ctx
	return ctx
}

func errBody(t *testing.T, w *httptest.ResponseRecorder) api.ErrorBody {
	var eb api.ErrorBody
	if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Category == "" {
		t.Fatalf("status %d: not an error body: %q", w.Code, w.Body.String())
	}
	return eb
}

func lastAPI(t *testing.T, l *audit.Log) audit.APIRecord {
	t.Helper()
	es, err := l.List(audit.Filter{Kinds: []audit.Kind{audit.KindAPI}, Limit: 1})
	if err != nil || len(es) != 1 {
		t.Fatalf("no api entry (%v)", err)
	}
	return *es[0].API
}

var root = who{uid: 0}

func TestPipelineUnixPeers(t *testing.T) {
	h := newHarness(t, config.RateLimits{})
	w := h.do(t, root, "GET", "/v1/projects", "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), "prod-y") {
		t.Fatalf("root list: %d %s", w.Code, w.Body)
	}
	if rec := lastAPI(t, h.log); rec.Identity != "uid:0" || rec.Role != "admin" || rec.Phase != "done" || rec.Status != 200 || !strings.HasPrefix(rec.Remote, "unix:uid=0") {
		t.Errorf("audit: %+v", rec)
	}
	// A local user sees and acts on its own project only.
	alice := who{uid: 1000}
	if w := h.do(t, alice, "GET", "/v1/projects", ""); w.Body.String() != "[\"ci-x\"]\n" {
		t.Errorf("alice's listing: %s", w.Body)
	}
	if w := h.do(t, alice, "POST", "/v1/agents/ci-x/a/kill", ""); w.Code != 204 {
		t.Errorf("alice kills her agent: %d %s", w.Code, w.Body)
	}
	w = h.do(t, alice, "POST", "/v1/agents/prod-y/a/kill", "")
	if w.Code != 404 || errBody(t, w).Error != `project "prod-y" not found` {
		t.Errorf("alice kills root's agent: %d %s", w.Code, w.Body)
	}
	if got := h.Calls(); len(got) != 1 || got[0] != "kill ci-x/a" {
		t.Errorf("calls %v", got)
	}
	// No peer credentials: refused, never root.
	if w := h.do(t, who{uid: -1}, "GET", "/v1/projects", ""); w.Code != 401 {
		t.Errorf("no peer credentials: %d", w.Code)
	}
}

func TestPipelineKeys(t *testing.T) {
	h := newHarness(t, config.RateLimits{})
	_, viewer, err := h.store.CreateKey("ro", "viewer", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, ci, _ := h.store.CreateKey("ci", "operator", []string{"ci-*"}, 0)
	if w := h.do(t, who{key: viewer}, "GET", "/v1/projects", ""); w.Code != 200 || !strings.Contains(w.Body.String(), "prod-y") {
		t.Errorf("viewer lists: %d %s", w.Code, w.Body)
	}
	// The gate refuses a viewer before the body is read.
	w := h.do(t, who{key: viewer}, "POST", "/v1/projects", `{"project":"ci-x"}`)
	if w.Code != 403 || errBody(t, w).Category != string(errdefs.PermissionDenied) {
		t.Errorf("viewer runs: %d %s", w.Code, w.Body)
	}
	if h.decoded != 0 {
		t.Error("the body of a refused run was decoded")
	}
	// The operator of ci-* runs ci-x, not prod-y; its listing hides prod-y.
	if w := h.do(t, who{key: ci}, "POST", "/v1/projects", `{"project":"ci-x"}`); w.Code != 201 {
		t.Errorf("ci runs ci-x: %d %s", w.Code, w.Body)
	}
	if w := h.do(t, who{key: ci}, "POST", "/v1/projects", `{"project":"prod-y"}`); w.Code != 404 {
		t.Errorf("ci runs prod-y: %d %s", w.Code, w.Body)
	}
	if w := h.do(t, who{key: ci}, "GET", "/v1/projects", ""); w.Body.String() != "[\"ci-x\"]\n" {
		t.Errorf("ci's listing: %s", w.Body)
	}
	if w := h.do(t, who{key: ci}, "POST", "/v1/projects", `not json`); w.Code != 400 {
		t.Errorf("undecodable body: %d", w.Code)
	}
	if got := h.Calls(); len(got) != 1 || got[0] != `run {"project":"ci-x"}` {
		t.Errorf("calls %v", got)
	}
	// Revoked, expired, unknown, malformed, absent, doubled.
	if _, err := h.store.RevokeKey("ro"); err != nil {
		t.Fatal(err)
	}
	w = h.do(t, who{key: viewer}, "GET", "/v1/projects", "")
	if w.Code != 401 || !strings.Contains(errBody(t, w).Error, "revoked") || w.Header().Get("WWW-Authenticate") == "" {
		t.Errorf("revoked key: %d %s", w.Code, w.Body)
	}
	_, short, _ := h.store.CreateKey("short", "viewer", nil, time.Minute)
	h.store.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	if w := h.do(t, who{key: short}, "GET", "/v1/projects", ""); w.Code != 401 || !strings.Contains(w.Body.String(), "expired") {
		t.Errorf("expired key: %d %s", w.Code, w.Body)
	}
	h.store.now = time.Now
	for _, k := range []string{"cortex_nope", "nope", ci + " "} {
		if w := h.do(t, who{key: k}, "GET", "/v1/projects", ""); w.Code != 401 {
			t.Errorf("key %q: %d", k, w.Code)
		}
	}
	if w := h.do(t, who{tls: true}, "GET", "/v1/projects", ""); w.Code != 401 {
		t.Errorf("TLS without credentials: %d", w.Code)
	}
	if rec := lastAPI(t, h.log); rec.Identity != "anonymous" || rec.Outcome != "unauthenticated" || rec.Status != 401 {
		t.Errorf("audit of a 401: %+v", rec)
	}
}

func TestPipelineCerts(t *testing.T) {
	h := newHarness(t, config.RateLimits{})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "svc"}}, key)
	rec, certPEM, err := h.store.IssueCert(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), "svc", "operator", []string{"ci-*"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(certPEM)
	cert, _ := x509.ParseCertificate(blk.Bytes)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: h.store.CAPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("issued certificate does not verify against the CA: %v", err)
	}
	if w := h.do(t, who{cert: cert}, "POST", "/v1/agents/ci-x/a/kill", ""); w.Code != 204 {
		t.Errorf("cert kills ci-x/a: %d %s", w.Code, w.Body)
	}
	if got := lastAPI(t, h.log); got.Identity != "cert:svc" || got.Credential != rec.Serial || got.Phase != "end" {
		t.Errorf("audit: %+v", got)
	}
	if w := h.do(t, who{cert: cert, key: "cortex_x"}, "GET", "/v1/projects", ""); w.Code != 401 {
		t.Errorf("cert and key together: %d", w.Code)
	}
	if _, err := h.store.RevokeCert(rec.Serial); err != nil {
		t.Fatal(err)
	}
	if w := h.do(t, who{cert: cert}, "GET", "/v1/projects", ""); w.Code != 401 || !strings.Contains(w.Body.String(), "revoked") {
		t.Errorf("revoked cert: %d %s", w.Code, w.Body)
	}
}

func TestPipelineRateLimit(t *testing.T) {
	lim := config.DefaultAPI().RateLimits
	lim.Viewer = config.RateLimit{Rate: 0.5, Burst: 3}
	h := newHarness(t, lim)
	_, viewer, _ := h.store.CreateKey("ro", "viewer", nil, 0)
	codes := []int{}
	var last *httptest.ResponseRecorder
	for i := 0; i < 6; i++ {
		last = h.do(t, who{key: viewer}, "GET", "/v1/projects", "")
		codes = append(codes, last.Code)
	}
	if codes[0] != 200 || codes[2] != 200 || codes[3] != 429 || codes[5] != 429 {
		t.Fatalf("codes %v", codes)
	}
	if ra := last.Header().Get("Retry-After"); ra != "2" || errBody(t, last).Category != string(errdefs.RateLimited) {
		t.Errorf("Retry-After %q, body %s", ra, last.Body)
	}
	// Root is not held back by a viewer's bucket.
	if w := h.do(t, root, "GET", "/v1/projects", ""); w.Code != 200 {
		t.Errorf("root: %d", w.Code)
	}
	// 429s are summarised: one entry now, the rest when flushed.
	es, _ := h.log.List(audit.Filter{Identity: "key:ro"})
	limited := 0
	for _, e := range es {
		if e.API.Outcome == "limited" {
			limited += e.API.Count
		}
	}
	if limited != 1 {
		t.Errorf("limited entries count %d before the flush, want 1", limited)
	}
	h.p.Now = func() time.Time { return time.Now().Add(2 * time.Second) }
	h.p.FlushLimited()
	es, _ = h.log.List(audit.Filter{Identity: "key:ro"})
	limited = 0
	for _, e := range es {
		if e.API.Outcome == "limited" {
			limited += e.API.Count
		}
	}
	if limited != 3 {
		t.Errorf("limited requests audited %d, want 3", limited)
	}
}

// failingAudit fails every append.
type failingAudit struct{}

func (failingAudit) Append(audit.Entry) (uint64, error) { return 0, errors.New("disk full") }

// TestPipelineAuditFails: nothing unaudited happens: a mutating request
// is refused before its handler, a read's answer is withheld.
func TestPipelineAuditFails(t *testing.T) {
	h := newHarness(t, config.RateLimits{})
	sub := h.events.Subscribe("test", 16, events.OfType(events.SecurityAnomaly))
	h.p.Audit = failingAudit{}
	w := h.do(t, root, "POST", "/v1/agents/ci-x/a/kill", "")
	if w.Code != 503 || len(h.Calls()) != 0 {
		t.Errorf("kill with a failing audit log: %d, calls %v", w.Code, h.Calls())
	}
	if w := h.do(t, root, "GET", "/v1/projects", ""); w.Code != 503 || strings.Contains(w.Body.String(), "prod-y") {
		t.Errorf("read with a failing audit log: %d %s", w.Code, w.Body)
	}
	select {
	case e := <-sub.C:
		if d := e.Detail.(events.SecurityAnomalyDetail); d.Kind != events.AnomalyAuditFailure {
			t.Errorf("anomaly %+v", d)
		}
	default:
		t.Error("no audit-failure anomaly")
	}
}

func TestPipelineRoutes(t *testing.T) {
	h := newHarness(t, config.RateLimits{})
	_, ci, _ := h.store.CreateKey("ci", "operator", []string{"ci-*"}, 0)
	_, adm, _ := h.store.CreateKey("adm", "admin", nil, 0)
	// A route missing from the table is admin-only.
	if w := h.do(t, who{key: ci}, "GET", "/v1/unclassified", ""); w.Code != 403 {
		t.Errorf("unclassified as operator: %d", w.Code)
	}
	if w := h.do(t, who{key: adm}, "GET", "/v1/unclassified", ""); w.Code != 200 {
		t.Errorf("unclassified as admin: %d", w.Code)
	}
	// No route: the same 404 for everyone.
	for _, as := range []who{{key: ci}, {key: adm}} {
		if w := h.do(t, as, "GET", "/v1/nothing/here", ""); w.Code != 404 || errBody(t, w).Category != string(errdefs.NotFound) {
			t.Errorf("no route: %d %s", w.Code, w.Body)
		}
	}
	// A target given twice is refused, not guessed.
	if w := h.do(t, who{key: adm}, "GET", "/v1/logs?project=ci-x&project=prod-y", ""); w.Code != 400 {
		t.Errorf("duplicated project: %d", w.Code)
	}
	// Escaped path values: the handler acts on what was authorized.
	if w := h.do(t, who{key: ci}, "POST", "/v1/agents/%63i-x/a%2Fb/kill", ""); w.Code != 204 {
		t.Errorf("escaped kill: %d %s", w.Code, w.Body)
	}
	if w := h.do(t, who{key: ci}, "POST", "/v1/agents/prod%2Dy/a/kill", ""); w.Code != 404 {
		t.Errorf("escaped prod-y: %d", w.Code)
	}
	if got := h.Calls(); len(got) != 2 || got[1] != "kill ci-x/a/b" {
		t.Errorf("calls %v", got)
	}
	// An unclean path is redirected, nothing runs.
	if w := h.do(t, who{key: ci}, "POST", "/v1/agents/prod-y/../ci-x/a/kill", ""); w.Code/100 != 3 {
		t.Errorf("unclean path: %d", w.Code)
	}
	if len(h.Calls()) != 2 {
		t.Errorf("a redirect ran a handler: %v", h.Calls())
	}
	// Streams pass through and are audited at both ends.
	w := h.do(t, who{key: ci}, "GET", "/v1/logs?project=ci-x", "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), "hello") || !w.Flushed {
		t.Errorf("stream: %d flushed=%v %q", w.Code, w.Flushed, w.Body)
	}
	es, _ := h.log.List(audit.Filter{Identity: "key:ci", Limit: 2})
	if len(es) != 2 || es[0].API.Phase != "begin" || es[1].API.Phase != "end" || es[1].API.Status != 200 {
		t.Errorf("stream audit: %+v %+v", es[0].API, es[1].API)
	}
}

func TestPipelineAnomalies(t *testing.T) {
	h := newHarness(t, config.RateLimits{})
	sub := h.events.Subscribe("test", 64, events.OfType(events.SecurityAnomaly))
	_, viewer, _ := h.store.CreateKey("ro", "viewer", nil, 0)
	for i := 0; i < 12; i++ {
		h.do(t, who{key: viewer}, "POST", "/v1/agents/ci-x/a/kill", "")
	}
	h.do(t, who{key: viewer, remote: "198.51.100.7:1234"}, "GET", "/v1/projects", "")
	kinds := map[string]int{}
	for len(sub.C) > 0 {
		e := <-sub.C
		kinds[e.Detail.(events.SecurityAnomalyDetail).Kind]++
	}
	if kinds[events.AnomalyDeniedBurst] != 1 || kinds[events.AnomalyNewAddress] != 1 {
		t.Errorf("anomalies %v, want one denied-burst and one new-address", kinds)
	}
}
