package llm

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/llm/canon"
)

// Usage reports metered usage (GET /v1/llm/usage); pending counts are
// written first so the report includes every finished request.
func (g *Gateway) Usage(ctx context.Context, q UsageQuery) (api.LLMUsageReport, error) {
	if err := q.validate(); err != nil {
		return api.LLMUsageReport{}, errdefs.Wrap(errdefs.InvalidArgument, err)
	}
	if err := g.meter.flush(ctx); err != nil {
		return api.LLMUsageReport{}, errdefs.Wrap(errdefs.Unavailable, err)
	}
	rows, err := g.store.usage(ctx, q)
	if err != nil {
		return api.LLMUsageReport{}, errdefs.Wrap(errdefs.Unavailable, err)
	}
	rep := api.LLMUsageReport{Rows: make([]api.LLMUsageRow, len(rows))}
	var total UsageRow
	for i := range rows {
		total.add(&rows[i])
		rep.Rows[i] = api.LLMUsageRow(rows[i])
	}
	rep.Total = api.LLMUsageRow(total)
	return rep, nil
}

// Models lists the aliases, their targets and the targets' health (GET
// /v1/llm/models).
func (g *Gateway) Models() api.LLMModels {
	now := g.now()
	rep := api.LLMModels{Aliases: []api.LLMAlias{}}
	for _, name := range g.aliasNames() {
		rt := g.routes[name]
		ai := api.LLMAlias{Name: name, Strategy: rt.strategy, Cache: rt.cache, Retries: rt.retries}
		for _, t := range rt.targets {
			ti := api.LLMTarget{Provider: t.prov.Name, Kind: t.prov.Kind, Model: t.model, Weight: t.weight, Timeout: t.timeout.String()}
			if t.priced {
				ti.Price = &api.LLMPrice{Input: t.price.Input, Output: t.price.Output, CachedInput: t.price.CachedInput}
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

// Chat sends one prompt to alias from the host, through the same routing,
// cache and metering as agents (metered as project _host, agent cli; no
// budget applies).
func (g *Gateway) Chat(ctx context.Context, in api.LLMChatRequest) (*api.LLMChatResult, error) {
	start := time.Now()
	rt := g.routes[in.Alias]
	if rt == nil {
		return nil, errdefs.WithHint(errdefs.New(errdefs.NotFound, "no model alias %q", in.Alias), "cortex llm models lists the aliases: "+strings.Join(g.aliasNames(), ", "))
	}
	if strings.TrimSpace(in.Prompt) == "" {
		return nil, errdefs.New(errdefs.InvalidArgument, "empty prompt")
	}
	req := &canon.Request{Model: in.Alias, Messages: []canon.Message{{Role: canon.RoleUser, Parts: []canon.Part{{Type: canon.PartText, Text: in.Prompt}}}}, MaxTokens: in.MaxTokens}
	if in.System != "" {
		req.System = []canon.Part{{Type: canon.PartText, Text: in.System}}
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
	resp := s.acc.Result()
	res := &api.LLMChatResult{
		Alias: in.Alias, Provider: s.meta.provider, Model: resp.Model, Text: resp.Text(),
		FinishReason: string(resp.Finish), Cache: s.meta.cache, Attempts: s.meta.attempts, Usage: api.LLMUsage(resp.Usage),
		TotalMs: float64(time.Since(start).Microseconds()) / 1000,
	}
	if resp.NativeFamily != "" {
		res.NativeFinishReason = resp.Native
	}
	for _, p := range resp.Parts {
		if p.Type == canon.PartToolCall {
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
	acc   canon.Accumulator
	err   error
}

func (s *collectSink) begin(m answerMeta) error           { s.meta, s.began = m, time.Now(); return nil }
func (s *collectSink) event(ev canon.Event, _ bool) error { s.acc.Add(ev); return nil }
func (s *collectSink) end(err error) error                { s.err = err; return nil }

// AdminHandler serves the host-side API the daemon mounts under /v1/llm/
// (it accepts paths with or without that prefix):
//
//	GET  usage   ?project=&agent=&alias=&model=&since=YYYY-MM-DD&until=&group=day,agent,model
//	GET  models
//	POST chat    {"alias":"fast","prompt":"..."}
//	POST cassettes?project=P  {"files": {"<key>.json": {...}}}: held for a replay run of P
//	GET  cassettes/{project}  the files a recording run recorded
//
// Answers are the api.LLM* types as JSON; errors are api.ErrorBody.
// Authentication and authorisation are the daemon API's.
func (g *Gateway) AdminHandler() http.Handler { return http.HandlerFunc(g.serveAdmin) }

func (g *Gateway) serveAdmin(w http.ResponseWriter, r *http.Request) {
	p := strings.Trim(strings.TrimPrefix(r.URL.Path, "/v1/llm"), "/")
	switch p {
	case "usage":
		if r.Method != http.MethodGet {
			api.MethodNotAllowed(w, r, http.MethodGet)
			return
		}
		v := r.URL.Query()
		q := UsageQuery{Project: v.Get("project"), Agent: v.Get("agent"), Alias: v.Get("alias"), Model: v.Get("model"), Since: v.Get("since"), Until: v.Get("until")}
		if gb := v.Get("group"); gb != "" {
			q.GroupBy = strings.Split(gb, ",")
		}
		rep, err := g.Usage(r.Context(), q)
		if err != nil {
			api.WriteError(w, 0, err)
			return
		}
		api.WriteJSON(w, http.StatusOK, rep)
	case "models":
		if r.Method != http.MethodGet {
			api.MethodNotAllowed(w, r, http.MethodGet)
			return
		}
		api.WriteJSON(w, http.StatusOK, g.Models())
	case "chat":
		if r.Method != http.MethodPost {
			api.MethodNotAllowed(w, r, http.MethodPost)
			return
		}
		var in api.LLMChatRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			api.WriteError(w, 0, errdefs.New(errdefs.InvalidArgument, "chat request: %v", err))
			return
		}
		res, err := g.Chat(r.Context(), in)
		if err != nil {
			api.WriteError(w, 0, err)
			return
		}
		api.WriteJSON(w, http.StatusOK, res)
	case "cassettes":
		if r.Method != http.MethodPost {
			api.MethodNotAllowed(w, r, http.MethodPost)
			return
		}
		var in api.LLMCassettes
		dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			api.WriteError(w, 0, errdefs.New(errdefs.InvalidArgument, "cassettes: %v", err))
			return
		}
		files := make(map[string][]byte, len(in.Files))
		for n, b := range in.Files {
			files[n] = b
		}
		id, err := g.Upload(r.URL.Query().Get("project"), files)
		if err != nil {
			api.WriteError(w, 0, err)
			return
		}
		api.WriteJSON(w, http.StatusCreated, api.LLMCassetteUpload{ID: id})
	default:
		if project, ok := strings.CutPrefix(p, "cassettes/"); ok && r.Method == http.MethodGet {
			files, err := g.Recorded(project)
			if err != nil {
				api.WriteError(w, 0, err)
				return
			}
			api.WriteJSON(w, http.StatusOK, api.LLMCassettes{Files: files})
			return
		}
		api.WriteError(w, 0, errdefs.New(errdefs.NotFound, "no such llm endpoint; use usage, models, chat or cassettes"))
	}
}
