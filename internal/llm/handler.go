package llm

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cortexrt/cortex/internal/events"
	"github.com/cortexrt/cortex/internal/llm/anthropic"
	"github.com/cortexrt/cortex/internal/llm/canon"
	"github.com/cortexrt/cortex/internal/llm/cassette"
	"github.com/cortexrt/cortex/internal/llm/openai"
	"github.com/cortexrt/cortex/internal/logkey"
)

// Response headers the gateway adds to every answer.
const (
	// HeaderAddedLatency is the time in milliseconds the gateway itself
	// added before the answer's headers: everything but waiting on
	// upstreams (failed attempts and retry backoff count as upstream).
	HeaderAddedLatency = "X-Cortex-Added-Latency-Ms"
	// HeaderCache is hit, miss or bypass on answers; a request sends it
	// as "off" (or Cache-Control: no-cache / no-store) to skip the cache.
	HeaderCache    = "X-Cortex-Cache"
	HeaderAlias    = "X-Cortex-Alias"
	HeaderProvider = "X-Cortex-Provider"
	HeaderModel    = "X-Cortex-Model"
	HeaderAttempts = "X-Cortex-Attempts"
)

// maxBody bounds a request body (images make them large).
const maxBody = 32 << 20

// hostProject and hostAgent meter calls made from the host (cortex llm chat).
const (
	hostProject = "_host"
	hostAgent   = "cli"
)

// AgentHandler serves the API agents reach at http://llm.cortex.internal:
// POST /v1/chat/completions, POST /v1/embeddings, GET /v1/models[/ID]
// (OpenAI-compatible) and POST /v1/messages (Anthropic-compatible). Every
// request needs an agent token (Authorization: Bearer or x-api-key): 401
// without a valid one, or with another agent's (see WithAgent); 403 for a
// model alias outside the agent's llm.access; 429 over budget.
func (g *Gateway) AgentHandler() http.Handler { return http.HandlerFunc(g.serveAgent) }

func (g *Gateway) serveAgent(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	path := strings.TrimSuffix(r.URL.Path, "/")
	fam := canon.FamilyOpenAI
	if path == "/v1/messages" || (strings.HasPrefix(path, "/v1/models") && r.Header.Get("anthropic-version") != "") {
		fam = canon.FamilyAnthropic
	}
	a, msg := g.authenticate(r)
	if a == nil {
		writeAPIError(w, fam, http.StatusUnauthorized, msg, 0)
		return
	}
	switch {
	case path == "/v1/chat/completions" || path == "/v1/messages":
		if r.Method != http.MethodPost {
			writeAPIError(w, fam, http.StatusMethodNotAllowed, "use POST", 0)
			return
		}
		g.serveChat(w, r, a, fam, start)
	case path == "/v1/embeddings":
		if r.Method != http.MethodPost {
			writeAPIError(w, fam, http.StatusMethodNotAllowed, "use POST", 0)
			return
		}
		g.serveEmbed(w, r, a, start)
	case path == "/v1/models" || strings.HasPrefix(path, "/v1/models/"):
		if r.Method != http.MethodGet {
			writeAPIError(w, fam, http.StatusMethodNotAllowed, "use GET", 0)
			return
		}
		g.serveModels(w, a, fam, strings.TrimPrefix(strings.TrimPrefix(path, "/v1/models"), "/"))
	default:
		writeAPIError(w, fam, http.StatusNotFound, "no such endpoint "+r.URL.Path+"; the gateway serves /v1/chat/completions, /v1/embeddings, /v1/models and /v1/messages", 0)
	}
}

// authenticate finds the agent a request's token belongs to.
func (g *Gateway) authenticate(r *http.Request) (*agentEntry, string) {
	tok := ""
	if h := r.Header.Get("Authorization"); h != "" {
		if v, ok := strings.CutPrefix(h, "Bearer "); ok {
			tok = strings.TrimSpace(v)
		}
	}
	if tok == "" {
		tok = strings.TrimSpace(r.Header.Get("x-api-key"))
	}
	if tok == "" {
		return nil, "missing API key: send the agent's token (OPENAI_API_KEY or ANTHROPIC_API_KEY) as Authorization: Bearer or x-api-key"
	}
	g.mu.RLock()
	e := g.byToken[tokenHash(tok)]
	g.mu.RUnlock()
	if e == nil || subtle.ConstantTimeCompare([]byte(e.token), []byte(tok)) != 1 {
		return nil, "invalid API key: not the token of a running Cortex agent"
	}
	if caller, ok := callerOf(r.Context()); ok && caller != [2]string{e.project, e.agent} {
		g.log.Warn("llm token used by another agent", logkey.Project, caller[0], logkey.Agent, caller[1], "token_of", e.project+"/"+e.agent)
		return nil, "invalid API key: this token belongs to another agent"
	}
	return e, ""
}

// resolve checks the alias against the agent's grant and the config.
func (g *Gateway) resolve(a *agentEntry, alias string) (*route, int, string) {
	g.mu.RLock()
	granted := a.granted(alias)
	list := strings.Join(a.aliases, ", ")
	g.mu.RUnlock()
	if !granted {
		if list == "" {
			list = "none"
		}
		g.deny(a, alias, "alias", "granted: "+list)
		return nil, http.StatusForbidden, fmt.Sprintf("model alias %q is not in this agent's llm.access (granted: %s); add it to the agent's capabilities in cortex.yaml", alias, list)
	}
	rt := g.routes[alias]
	if rt == nil && g.replaying(a.project) {
		// A replay answers from the cassette: the alias needs no targets.
		rt = &route{name: alias, fingerprint: "replay"}
	}
	if rt == nil {
		g.deny(a, alias, "unknown-alias", "not in the daemon's llm.aliases")
		return nil, http.StatusNotFound, fmt.Sprintf("model alias %q is granted but not configured in the daemon's llm.aliases", alias)
	}
	return rt, 0, ""
}

func (g *Gateway) budgets(a *agentEntry, alias string) error {
	g.mu.RLock()
	pb := g.projects[a.project]
	ab := a.budget
	g.mu.RUnlock()
	err := g.meter.admit(a.project, a.agent, ab, pb)
	if err != nil {
		g.deny(a, alias, "budget", err.Error())
	}
	return err
}

// deny reports a refused request on the daemon's event stream.
func (g *Gateway) deny(a *agentEntry, alias, reason, detail string) {
	if ev := g.events.Load(); ev != nil {
		ev.Emit(events.Event{Project: a.project, Agent: a.agent, Detail: events.LLMDeniedDetail{Alias: alias, Reason: reason, Detail: detail}})
	}
}

// SetEvents makes the gateway report its refusals (an alias outside an
// agent's llm.access, an unknown alias, a budget) on s.
func (g *Gateway) SetEvents(s *events.Stream) { g.events.Store(s) }

func (g *Gateway) serveChat(w http.ResponseWriter, r *http.Request, a *agentEntry, fam string, start time.Time) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeAPIError(w, fam, http.StatusRequestEntityTooLarge, "request body too large or unreadable: "+err.Error(), 0)
		return
	}
	var req *canon.Request
	if fam == canon.FamilyAnthropic {
		req, err = anthropic.Parse(body, r.Header)
	} else {
		req, err = openai.ParseChat(body)
	}
	if err != nil {
		writeAPIError(w, fam, http.StatusBadRequest, err.Error(), 0)
		return
	}
	rt, status, msg := g.resolve(a, req.Model)
	if rt == nil {
		writeAPIError(w, fam, status, msg, 0)
		return
	}
	if err := g.budgets(a, req.Model); err != nil {
		var be *budgetError
		errors.As(err, &be)
		writeAPIError(w, fam, http.StatusTooManyRequests, be.msg, be.retryAfter)
		return
	}
	var s sink
	switch {
	case req.Stream && fam == canon.FamilyAnthropic:
		s = &httpStreamSink{w: w, start: start, sw: anthropic.NewStreamWriter(w)}
	case req.Stream:
		s = &httpStreamSink{w: w, start: start, sw: openai.NewStreamWriter(w, req.StreamUsage)}
	default:
		s = &httpJSONSink{w: w, start: start, fam: fam}
	}
	c := &call{project: a.project, agent: a.agent, route: rt, req: req, noCache: cacheOptOut(r.Header)}
	if err := g.serve(r.Context(), c, s); err != nil {
		status, msg := http.StatusBadGateway, g.scrub(err.Error())
		var re *routeError
		if errors.As(err, &re) {
			status = re.status
		}
		if errors.Is(err, context.Canceled) {
			return // the caller went away
		}
		writeAPIError(w, fam, status, msg, 0)
	}
}

// cacheOptOut reports whether the request asks to skip the cache.
func cacheOptOut(h http.Header) bool {
	switch strings.ToLower(h.Get(HeaderCache)) {
	case "off", "no", "false", "0", "bypass":
		return true
	}
	cc := strings.ToLower(h.Get("Cache-Control"))
	return strings.Contains(cc, "no-cache") || strings.Contains(cc, "no-store")
}

// call is one chat request on its way through the gateway.
type call struct {
	project, agent string
	route          *route
	req            *canon.Request
	noCache        bool
}

// answerMeta describes the answer to a sink before its first event.
type answerMeta struct {
	alias, provider, model, cache string
	attempts                      int
	upstream                      time.Duration
}

// sink receives an answer: begin once, then events, then end (err is the
// error that broke the stream after it began, nil when complete). more
// tells that another event follows at once, so a stream may hold its flush.
type sink interface {
	begin(m answerMeta) error
	event(ev canon.Event, more bool) error
	end(err error) error
}

// serve answers c into s: from the cache when it can, else through the
// router; then meters the call and caches a complete answer. An error
// returned means nothing was sent to s; errors after begin go to s.end.
func (g *Gateway) serve(ctx context.Context, c *call, s sink) error {
	if cs := g.cassetteOf(c.project); cs != nil {
		// Record and replay (cassette.go): a replay never reaches a
		// provider; a recording bypasses the cache so every answer comes
		// from one, with its own timing.
		if cs.mode == ModeReplay {
			return g.replay(ctx, cs, c, s)
		}
		c.noCache = true
		s = &recordingSink{sink: s, g: g, c: cs, call: c, key: cassette.Key(c.req, g.redact), start: time.Now()}
	}
	rt, req := c.route, c.req
	day := dayOf(g.now())
	key := ""
	cacheState := "bypass"
	if rt.cache && g.cache != nil && !c.noCache {
		key = cacheKey(rt, req)
		if ans, ok := g.cache.get(key); ok {
			g.meter.record(usageKey{day, c.project, c.agent, rt.name, ans.Provider, ans.Response.Model}, UsageRow{Requests: 1, CacheHits: 1})
			if err := s.begin(answerMeta{alias: rt.name, provider: ans.Provider, model: ans.Response.Model, cache: "hit"}); err != nil {
				return nil
			}
			evs := canon.Replay(ans.Response)
			for i, ev := range evs {
				if err := s.event(ev, i < len(evs)-1); err != nil {
					return nil
				}
			}
			_ = s.end(nil)
			return nil
		}
		cacheState = "miss"
	}
	o, err := g.open(ctx, rt, req)
	if err != nil {
		g.meter.record(usageKey{day, c.project, c.agent, rt.name, "", ""}, UsageRow{Requests: 1, Errors: 1})
		return err
	}
	defer o.close()
	t := o.target
	acc := &canon.Accumulator{}
	var streamErr error
	clientGone := s.begin(answerMeta{alias: rt.name, provider: t.prov.Name, model: t.model, cache: cacheState, attempts: o.attempts, upstream: o.upstream}) != nil
	for !clientGone {
		ev, err := o.next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				streamErr = err
			}
			break
		}
		acc.Add(ev)
		clientGone = s.event(ev, o.more()) != nil
	}
	if !clientGone {
		if streamErr != nil {
			var ue *canon.UpstreamError
			if !errors.As(streamErr, &ue) {
				streamErr = &canon.UpstreamError{Provider: t.prov.Name, Message: streamErr.Error()}
			}
			g.log.Warn("llm stream broke after the first token", "alias", rt.name, "target", t.String(), logkey.Err, streamErr)
			_ = s.end(fmt.Errorf("%s", g.scrub(streamErr.Error())))
		} else {
			_ = s.end(nil)
		}
	}
	resp := acc.Result()
	resp.Created = g.now().Unix()
	row := UsageRow{Requests: 1, InputTokens: resp.Usage.InputTokens, OutputTokens: resp.Usage.OutputTokens,
		CacheReadTokens: resp.Usage.CacheReadTokens, CacheWriteTokens: resp.Usage.CacheWriteTokens, CostUSD: cost(t.price, resp.Usage)}
	complete := streamErr == nil && !clientGone
	if !complete {
		row.Errors = 1
	}
	g.meter.record(usageKey{day, c.project, c.agent, rt.name, t.prov.Name, t.model}, row)
	if g.log.Enabled(ctx, slog.LevelDebug) {
		g.log.Debug("llm request", logkey.Project, c.project, logkey.Agent, c.agent, "alias", rt.name, "target", t.String(),
			"stream", req.Stream, "complete", complete, "attempts", o.attempts, "input_tokens", resp.Usage.InputTokens,
			"output_tokens", resp.Usage.OutputTokens, "cache", cacheState)
	}
	if complete && key != "" && cacheable(resp) {
		if err := g.cache.put(key, &cachedAnswer{Stored: g.now(), Alias: rt.name, Provider: t.prov.Name, Response: resp}); err != nil {
			g.log.Warn("llm cache store", logkey.Err, err)
		}
	}
	return nil
}

func cacheable(r *canon.Response) bool {
	switch r.Finish {
	case canon.FinishStop, canon.FinishLength, canon.FinishToolCalls:
		return true
	}
	return false
}

// setAnswerHeaders writes the gateway's headers, the added latency last
// measured as late as possible.
func setAnswerHeaders(h http.Header, m answerMeta, start time.Time) {
	h.Set(HeaderAlias, m.alias)
	if m.provider != "" {
		h.Set(HeaderProvider, m.provider)
	}
	if m.model != "" {
		h.Set(HeaderModel, m.model)
	}
	h.Set(HeaderCache, m.cache)
	h.Set(HeaderAttempts, strconv.Itoa(m.attempts))
	added := time.Since(start) - m.upstream
	if added < 0 {
		added = 0
	}
	ms := float64(added.Microseconds()) / 1000
	h.Set(HeaderAddedLatency, strconv.FormatFloat(ms, 'f', 3, 64))
	h.Set("Server-Timing", fmt.Sprintf("gateway;dur=%.3f, upstream;dur=%.3f", ms, float64(m.upstream.Microseconds())/1000))
}

// streamWriter renders events in one wire format. setHold(true) lets
// writes accumulate unflushed until the next event without hold or end.
type streamWriter interface {
	Event(canon.Event) error
	End(error) error
	SetHold(bool)
}

// httpStreamSink relays events to an HTTP client as they come.
type httpStreamSink struct {
	w     http.ResponseWriter
	start time.Time
	sw    streamWriter
}

func (s *httpStreamSink) begin(m answerMeta) error {
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	setAnswerHeaders(h, m, s.start)
	s.w.WriteHeader(http.StatusOK)
	return nil
}

func (s *httpStreamSink) event(ev canon.Event, more bool) error {
	s.sw.SetHold(more)
	return s.sw.Event(ev)
}

func (s *httpStreamSink) end(err error) error {
	s.sw.SetHold(false)
	return s.sw.End(err)
}

// httpJSONSink collects events and writes one JSON answer.
type httpJSONSink struct {
	w     http.ResponseWriter
	start time.Time
	fam   string
	meta  answerMeta
	acc   canon.Accumulator
}

func (s *httpJSONSink) begin(m answerMeta) error           { s.meta = m; return nil }
func (s *httpJSONSink) event(ev canon.Event, _ bool) error { s.acc.Add(ev); return nil }

func (s *httpJSONSink) end(err error) error {
	if err != nil {
		writeAPIError(s.w, s.fam, http.StatusBadGateway, err.Error(), 0)
		return nil
	}
	resp := s.acc.Result()
	resp.Created = time.Now().Unix()
	var body []byte
	if s.fam == canon.FamilyAnthropic {
		body = anthropic.Render(resp)
	} else {
		body = openai.Render(resp)
	}
	h := s.w.Header()
	h.Set("Content-Type", "application/json")
	setAnswerHeaders(h, s.meta, s.start)
	s.w.WriteHeader(http.StatusOK)
	_, werr := s.w.Write(body)
	return werr
}

// writeAPIError answers in the error format of the caller's wire family.
func writeAPIError(w http.ResponseWriter, fam string, status int, msg string, retryAfter time.Duration) {
	var body []byte
	if fam == canon.FamilyAnthropic {
		body = anthropic.ErrorBody(status, msg)
	} else {
		body = openai.ErrorBody(status, msg)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((retryAfter+time.Second-1)/time.Second)))
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (g *Gateway) serveEmbed(w http.ResponseWriter, r *http.Request, a *agentEntry, start time.Time) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeAPIError(w, canon.FamilyOpenAI, http.StatusRequestEntityTooLarge, "request body too large or unreadable: "+err.Error(), 0)
		return
	}
	req, format, err := openai.ParseEmbed(body)
	if err != nil {
		writeAPIError(w, canon.FamilyOpenAI, http.StatusBadRequest, err.Error(), 0)
		return
	}
	if g.replaying(a.project) {
		writeAPIError(w, canon.FamilyOpenAI, http.StatusNotImplemented, "llm replay: embeddings are not recorded; a replayed project can only chat", 0)
		return
	}
	rt, status, msg := g.resolve(a, req.Model)
	if rt == nil {
		writeAPIError(w, canon.FamilyOpenAI, status, msg, 0)
		return
	}
	if err := g.budgets(a, req.Model); err != nil {
		var be *budgetError
		errors.As(err, &be)
		writeAPIError(w, canon.FamilyOpenAI, http.StatusTooManyRequests, be.msg, be.retryAfter)
		return
	}
	day := dayOf(g.now())
	res, t, upstream, err := g.embed(r.Context(), rt, req)
	if err != nil {
		g.meter.record(usageKey{day, a.project, a.agent, rt.name, "", ""}, UsageRow{Requests: 1, Errors: 1})
		if errors.Is(err, context.Canceled) {
			return
		}
		status := http.StatusBadGateway
		var re *routeError
		if errors.As(err, &re) {
			status = re.status
		}
		writeAPIError(w, canon.FamilyOpenAI, status, g.scrub(err.Error()), 0)
		return
	}
	g.meter.record(usageKey{day, a.project, a.agent, rt.name, t.prov.Name, t.model}, UsageRow{Requests: 1, InputTokens: res.Usage.InputTokens, CostUSD: cost(t.price, res.Usage)})
	if res.Model == "" {
		res.Model = t.model
	}
	out := openai.RenderEmbed(res, format)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	setAnswerHeaders(h, answerMeta{alias: rt.name, provider: t.prov.Name, model: t.model, cache: "bypass", attempts: 1, upstream: upstream}, start)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

func (g *Gateway) serveModels(w http.ResponseWriter, a *agentEntry, fam, id string) {
	g.mu.RLock()
	var names []string
	for _, n := range a.aliases {
		if g.routes[n] != nil {
			names = append(names, n)
		}
	}
	g.mu.RUnlock()
	type oaModel struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	type anModel struct {
		Type        string `json:"type"`
		ID          string `json:"id"`
		DisplayName string `json:"display_name"`
		CreatedAt   string `json:"created_at"`
	}
	one := func(n string) any {
		if fam == canon.FamilyAnthropic {
			return anModel{Type: "model", ID: n, DisplayName: n, CreatedAt: "1970-01-01T00:00:00Z"}
		}
		return oaModel{ID: n, Object: "model", OwnedBy: "cortex"}
	}
	var v any
	if id != "" {
		if !slices.Contains(names, id) {
			writeAPIError(w, fam, http.StatusNotFound, fmt.Sprintf("model alias %q is not available to this agent", id), 0)
			return
		}
		v = one(id)
	} else if fam == canon.FamilyAnthropic {
		data := make([]any, len(names))
		for i, n := range names {
			data[i] = one(n)
		}
		first, last := "", ""
		if len(names) > 0 {
			first, last = names[0], names[len(names)-1]
		}
		v = map[string]any{"data": data, "has_more": false, "first_id": first, "last_id": last}
	} else {
		data := make([]any, len(names))
		for i, n := range names {
			data[i] = one(n)
		}
		v = map[string]any{"object": "list", "data": data}
	}
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}
