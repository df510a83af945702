package llm

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// UsageReport is the answer of GET /v1/llm/usage.
type UsageReport struct {
	Rows  []UsageRow `json:"rows"`
	Total UsageRow   `json:"total"`
}

// Usage reports metered usage; pending counts are written first so the
// report includes every finished request.
func (g *Gateway) Usage(ctx context.Context, q UsageQuery) (UsageReport, error) {
	if err := q.validate(); err != nil {
		return UsageReport{}, errdefs.Wrap(errdefs.InvalidArgument, err)
	}
	if err := g.meter.flush(ctx); err != nil {
		return UsageReport{}, errdefs.Wrap(errdefs.Unavailable, err)
	}
	rows, err := g.store.usage(ctx, q)
	if err != nil {
		return UsageReport{}, errdefs.Wrap(errdefs.Unavailable, err)
	}
	rep := UsageReport{Rows: rows}
	if rep.Rows == nil {
		rep.Rows = []UsageRow{}
	}
	for i := range rows {
		rep.Total.add(&rows[i])
	}
	return rep, nil
}

// AliasInfo describes one configured alias for `cortex llm models`.
type AliasInfo struct {
	Name     string       `json:"name"`
	Strategy string       `json:"strategy"`
	Cache    bool         `json:"cache"`
	Retries  int          `json:"retries"`
	Targets  []TargetInfo `json:"targets"`
}

// TargetInfo describes one target of an alias and its current health.
type TargetInfo struct {
	Provider         string     `json:"provider"`
	Kind             string     `json:"kind"`
	Model            string     `json:"model"`
	Weight           float64    `json:"weight,omitempty"`
	Timeout          string     `json:"timeout"`         // a Go duration: 30s
	Price            *PriceInfo `json:"price,omitempty"` // nil when unknown
	CoolingDownUntil *time.Time `json:"cooling_down_until,omitempty"`
	LatencyMs        float64    `json:"latency_ms,omitempty"` // moving average time to first token
}

// PriceInfo is a target's price, USD per million tokens.
type PriceInfo struct {
	Input       float64  `json:"input"`
	Output      float64  `json:"output"`
	CachedInput *float64 `json:"cached_input,omitempty"`
}

// ModelsReport is the answer of GET /v1/llm/models.
type ModelsReport struct {
	Aliases []AliasInfo `json:"aliases"`
}

// Models lists the aliases, their targets and the targets' health.
func (g *Gateway) Models() ModelsReport {
	now := g.now()
	rep := ModelsReport{Aliases: []AliasInfo{}}
	for _, name := range g.aliasNames() {
		rt := g.routes[name]
		ai := AliasInfo{Name: name, Strategy: rt.strategy, Cache: rt.cache, Retries: rt.retries}
		for _, t := range rt.targets {
			ti := TargetInfo{Provider: t.prov.name, Kind: t.prov.kind, Model: t.model, Weight: t.weight, Timeout: t.timeout.String()}
			if t.priced {
				ti.Price = &PriceInfo{Input: t.price.Input, Output: t.price.Output, CachedInput: t.price.CachedInput}
			}
			if c, until := t.health.cooling(now); c {
				ti.CoolingDownUntil = &until
			}
			if l, ok := t.health.latency(); ok {
				ti.LatencyMs = float64(l.Microseconds()) / 1000
			}
			ai.Targets = append(ai.Targets, ti)
		}
		rep.Aliases = append(rep.Aliases, ai)
	}
	return rep
}

// ChatRequest is the body of POST /v1/llm/chat, a quick check from the host.
type ChatRequest struct {
	Alias     string `json:"alias"`
	Prompt    string `json:"prompt"`
	System    string `json:"system,omitempty"`
	MaxTokens int    `json:"max_tokens,omitempty"`
	NoCache   bool   `json:"no_cache,omitempty"`
}

// ChatResult is the answer of POST /v1/llm/chat.
type ChatResult struct {
	Alias              string  `json:"alias"`
	Provider           string  `json:"provider"`
	Model              string  `json:"model"`
	Text               string  `json:"text"`
	ToolCalls          int     `json:"tool_calls,omitempty"`
	FinishReason       string  `json:"finish_reason"`
	NativeFinishReason string  `json:"native_finish_reason,omitempty"`
	Cache              string  `json:"cache"`
	Attempts           int     `json:"attempts"`
	Usage              Usage   `json:"usage"`
	AddedLatencyMs     float64 `json:"added_latency_ms"`
	TotalMs            float64 `json:"total_ms"`
}

// Chat sends one prompt to alias from the host, through the same routing,
// cache and metering as agents (metered as project _host, agent cli; no
// budget applies).
func (g *Gateway) Chat(ctx context.Context, in ChatRequest) (*ChatResult, error) {
	start := time.Now()
	rt := g.routes[in.Alias]
	if rt == nil {
		return nil, errdefs.WithHint(errdefs.New(errdefs.NotFound, "no model alias %q", in.Alias), "cortex llm models lists the aliases: "+strings.Join(g.aliasNames(), ", "))
	}
	if strings.TrimSpace(in.Prompt) == "" {
		return nil, errdefs.New(errdefs.InvalidArgument, "empty prompt")
	}
	req := &Request{Model: in.Alias, Messages: []Message{{Role: RoleUser, Parts: []Part{{Type: PartText, Text: in.Prompt}}}}, MaxTokens: in.MaxTokens}
	if in.System != "" {
		req.System = []Part{{Type: PartText, Text: in.System}}
	}
	s := &collectSink{}
	if err := g.serve(ctx, &call{project: hostProject, agent: hostAgent, route: rt, req: req, noCache: in.NoCache}, s); err != nil {
		cat := errdefs.Unavailable
		var re *routeError
		if errors.As(err, &re) && re.status == http.StatusBadRequest {
			cat = errdefs.InvalidArgument
		}
		return nil, errdefs.Wrap(cat, errors.New(g.scrub(err.Error())))
	}
	if s.err != nil {
		return nil, errdefs.Wrap(errdefs.Unavailable, s.err)
	}
	resp := s.acc.result()
	res := &ChatResult{
		Alias: in.Alias, Provider: s.meta.provider, Model: resp.Model, Text: resp.Text(),
		FinishReason: string(resp.Finish), Cache: s.meta.cache, Attempts: s.meta.attempts, Usage: resp.Usage,
		TotalMs: float64(time.Since(start).Microseconds()) / 1000,
	}
	if resp.NativeFamily != "" {
		res.NativeFinishReason = resp.Native
	}
	for _, p := range resp.Parts {
		if p.Type == PartToolCall {
			res.ToolCalls++
		}
	}
	added := s.began.Sub(start) - s.meta.upstream
	if added < 0 {
		added = 0
	}
	res.AddedLatencyMs = float64(added.Microseconds()) / 1000
	return res, nil
}

type collectSink struct {
	meta  answerMeta
	began time.Time
	acc   accumulator
	err   error
}

func (s *collectSink) begin(m answerMeta) error     { s.meta, s.began = m, time.Now(); return nil }
func (s *collectSink) event(ev Event, _ bool) error { s.acc.add(ev); return nil }
func (s *collectSink) end(err error) error          { s.err = err; return nil }

// AdminHandler serves the host-side API the daemon mounts under /v1/llm/
// (it accepts paths with or without that prefix):
//
//	GET  usage   ?project=&agent=&alias=&model=&since=YYYY-MM-DD&until=&group=day,agent,model
//	GET  models
//	POST chat    {"alias":"fast","prompt":"..."}
//
// Answers are JSON; errors are {"error":"...","hint":"..."} with the status
// of their category. Authentication and authorisation are the daemon API's.
func (g *Gateway) AdminHandler() http.Handler { return http.HandlerFunc(g.serveAdmin) }

func (g *Gateway) serveAdmin(w http.ResponseWriter, r *http.Request) {
	p := strings.Trim(strings.TrimPrefix(r.URL.Path, "/v1/llm"), "/")
	switch p {
	case "usage":
		if r.Method != http.MethodGet {
			adminError(w, http.StatusMethodNotAllowed, errors.New("use GET"))
			return
		}
		v := r.URL.Query()
		q := UsageQuery{Project: v.Get("project"), Agent: v.Get("agent"), Alias: v.Get("alias"), Model: v.Get("model"), Since: v.Get("since"), Until: v.Get("until")}
		if gb := v.Get("group"); gb != "" {
			q.GroupBy = strings.Split(gb, ",")
		}
		rep, err := g.Usage(r.Context(), q)
		if err != nil {
			adminError(w, 0, err)
			return
		}
		writeJSON(w, rep)
	case "models":
		if r.Method != http.MethodGet {
			adminError(w, http.StatusMethodNotAllowed, errors.New("use GET"))
			return
		}
		writeJSON(w, g.Models())
	case "chat":
		if r.Method != http.MethodPost {
			adminError(w, http.StatusMethodNotAllowed, errors.New("use POST"))
			return
		}
		var in ChatRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			adminError(w, 0, errdefs.New(errdefs.InvalidArgument, "chat request: %v", err))
			return
		}
		res, err := g.Chat(r.Context(), in)
		if err != nil {
			adminError(w, 0, err)
			return
		}
		writeJSON(w, res)
	default:
		adminError(w, http.StatusNotFound, errors.New("no such llm endpoint; use usage, models or chat"))
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		adminError(w, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func adminError(w http.ResponseWriter, status int, err error) {
	if status == 0 {
		status = errdefs.HTTPStatus(errdefs.CategoryOf(err))
	}
	body := map[string]string{"error": err.Error()}
	if h := errdefs.HintOf(err); h != "" {
		body["hint"] = h
	}
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
