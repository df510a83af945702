package anthropic

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/cortexrt/cortex/internal/llm/canon"
)

// Anthropic Messages wire types, shared by the connector and the
// Anthropic-compatible ingress.

const anthropicVersion = "2023-06-01"

type anBlock struct {
	Type   string `json:"type"`
	Text   string `json:"text"`
	Source *struct {
		Type      string `json:"type"`
		MediaType string `json:"media_type"`
		Data      string `json:"data"`
		URL       string `json:"url"`
	} `json:"source"`
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Input        json.RawMessage `json:"input"`
	ToolUseID    string          `json:"tool_use_id"`
	Content      json.RawMessage `json:"content"` // tool_result: string or blocks
	IsError      bool            `json:"is_error"`
	CacheControl json.RawMessage `json:"cache_control"`
}

type anUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
}

// canonical adds cache reads and writes to input, as every caller expects
// "input" to mean everything the model read.
func (u *anUsage) canonical() canon.Usage {
	return canon.Usage{
		InputTokens:      u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens,
		OutputTokens:     u.OutputTokens,
		CacheReadTokens:  u.CacheReadInputTokens,
		CacheWriteTokens: u.CacheCreationInputTokens,
	}
}

type anResponse struct {
	ID           string    `json:"id"`
	Model        string    `json:"model"`
	Content      []anBlock `json:"content"`
	StopReason   string    `json:"stop_reason"`
	StopSequence *string   `json:"stop_sequence"`
	Usage        anUsage   `json:"usage"`
}

func anthropicFinish(s string) canon.FinishReason {
	switch s {
	case "end_turn", "stop_sequence":
		return canon.FinishStop
	case "max_tokens", "model_context_window_exceeded":
		return canon.FinishLength
	case "tool_use":
		return canon.FinishToolCalls
	case "refusal":
		return canon.FinishContentFilter
	}
	return canon.FinishOther
}

// Connector serves kind anthropic (the Messages API).
type Connector struct {
	p         *canon.Provider
	maxTokens int // sent when the request has no limit; the API requires one
}

var _ canon.Connector = (*Connector)(nil)

// New returns the connector of p; maxTokens is sent when a request sets
// no limit.
func New(p *canon.Provider, maxTokens int) *Connector {
	return &Connector{p: p, maxTokens: maxTokens}
}

func (c *Connector) Chat(ctx context.Context, model string, req *canon.Request) (canon.Stream, error) {
	body, err := Encode(model, req, c.maxTokens)
	if err != nil {
		return nil, err
	}
	auth := func(h http.Header) {
		h.Set("x-api-key", c.p.Key.Reveal())
		h.Set("anthropic-version", anthropicVersion)
		if req.Family == canon.FamilyAnthropic && req.Header != nil {
			if v := req.Header.Get("anthropic-version"); v != "" {
				h.Set("anthropic-version", v)
			}
			if v := req.Header.Values("anthropic-beta"); len(v) > 0 {
				h["Anthropic-Beta"] = v
			}
		}
	}
	resp, err := c.p.Post(ctx, c.p.BaseURL+"/messages", body, auth)
	if err != nil {
		return nil, err
	}
	if req.Stream {
		return c.stream(ctx, resp), nil
	}
	var out anResponse
	if err := c.p.DecodeBody(ctx, resp, &out); err != nil {
		return nil, err
	}
	return canon.SliceStream(anthropicEvents(&out)), nil
}

func (c *Connector) Embed(context.Context, string, *canon.EmbedRequest) (*canon.EmbedResponse, error) {
	return nil, &canon.UpstreamError{Provider: c.p.Name, Status: http.StatusNotImplemented, Message: "anthropic has no embeddings API", Err: canon.ErrUnsupported}
}

// Encode renders req as a Messages API request: the system prompt
// goes top-level, tool calls become tool_use blocks with object input, tool
// results become tool_result blocks first in a user turn, and consecutive
// turns of one role are merged.
func Encode(model string, req *canon.Request, defMaxTokens int) (map[string]any, error) {
	if err := canon.CheckPortable(req, canon.FamilyAnthropic); err != nil {
		return nil, err
	}
	m := map[string]any{}
	if req.Family == canon.FamilyAnthropic {
		for k, v := range req.Extra {
			m[k] = v
		}
	}
	m["model"] = model
	maxTokens := req.MaxTokens
	if maxTokens <= 0 {
		maxTokens = defMaxTokens
	}
	m["max_tokens"] = maxTokens
	if system := encodeSystem(req); system != nil {
		m["system"] = system
	}
	msgs, err := encodeMessages(req.Messages)
	if err != nil {
		return nil, err
	}
	m["messages"] = msgs
	if len(req.Tools) > 0 {
		m["tools"] = encodeTools(req.Tools)
		if choice := encodeToolChoice(req); choice != nil {
			m["tool_choice"] = choice
		}
	}
	canon.SetOpt(m, "temperature", req.Temperature)
	canon.SetOpt(m, "top_p", req.TopP)
	canon.SetOpt(m, "top_k", req.TopK)
	if len(req.Stop) > 0 {
		m["stop_sequences"] = req.Stop
	}
	if req.Stream {
		m["stream"] = true
	} else {
		delete(m, "stream")
	}
	return m, nil
}

// encodeSystem is the system prompt: text blocks when any part carries a
// cache marker, else one string; nil when there is none.
func encodeSystem(req *canon.Request) any {
	if len(req.System) == 0 {
		return nil
	}
	cached := false
	for _, p := range req.System {
		cached = cached || len(p.CacheControl) > 0
	}
	if !cached {
		if s := req.SystemText(); s != "" {
			return s
		}
		return nil
	}
	blocks := make([]map[string]any, 0, len(req.System))
	for _, p := range req.System {
		b := map[string]any{"type": "text", "text": p.Text}
		if len(p.CacheControl) > 0 {
			b["cache_control"] = p.CacheControl
		}
		blocks = append(blocks, b)
	}
	return blocks
}

// encodeMessages turns the conversation into alternating user and
// assistant turns: consecutive messages of one role are merged, and in a
// user turn tool results come first, as the API wants.
func encodeMessages(messages []canon.Message) ([]map[string]any, error) {
	type turn struct {
		role   string
		blocks []map[string]any
	}
	var turns []turn
	for _, msg := range messages {
		role := "user"
		if msg.Role == canon.RoleAssistant {
			role = "assistant"
		}
		var blocks []map[string]any
		for _, p := range msg.Parts {
			b, err := encodeBlock(p)
			if err != nil {
				return nil, err
			}
			if b != nil {
				blocks = append(blocks, b)
			}
		}
		if len(blocks) == 0 {
			continue
		}
		if n := len(turns); n > 0 && turns[n-1].role == role {
			turns[n-1].blocks = append(turns[n-1].blocks, blocks...)
		} else {
			turns = append(turns, turn{role, blocks})
		}
	}
	msgs := make([]map[string]any, len(turns))
	for i, t := range turns {
		if t.role == "user" {
			sort.SliceStable(t.blocks, func(a, b int) bool {
				return t.blocks[a]["type"] == "tool_result" && t.blocks[b]["type"] != "tool_result"
			})
		}
		msgs[i] = map[string]any{"role": t.role, "content": t.blocks}
	}
	return msgs, nil
}

// encodeBlock is one content block of part p, or nil for a part Anthropic
// does not take (empty text, another family's native block).
func encodeBlock(p canon.Part) (map[string]any, error) {
	var b map[string]any
	switch p.Type {
	case canon.PartText:
		if p.Text == "" {
			return nil, nil
		}
		b = map[string]any{"type": "text", "text": p.Text}
	case canon.PartImage:
		if p.URL != "" {
			b = map[string]any{"type": "image", "source": map[string]string{"type": "url", "url": p.URL}}
		} else {
			b = map[string]any{"type": "image", "source": map[string]string{"type": "base64", "media_type": p.MediaType, "data": p.Data}}
		}
	case canon.PartToolCall:
		input, err := canon.ObjectArgs(p.Args)
		if err != nil {
			return nil, canon.BadRequest("tool call %s: %v", p.ToolID, err)
		}
		b = map[string]any{"type": "tool_use", "id": p.ToolID, "name": p.ToolName, "input": input}
	case canon.PartToolResult:
		b = map[string]any{"type": "tool_result", "tool_use_id": p.ToolID, "content": p.Text}
		if p.IsError {
			b["is_error"] = true
		}
	case canon.PartRaw:
		if p.Family != canon.FamilyAnthropic {
			return nil, nil
		}
		var raw map[string]any
		if json.Unmarshal(p.Raw, &raw) != nil {
			return nil, nil
		}
		return raw, nil // sent as it came, cache marker included
	default:
		return nil, nil
	}
	if len(p.CacheControl) > 0 {
		b["cache_control"] = p.CacheControl
	}
	return b, nil
}

// encodeTools is the tools list; an Anthropic server tool is sent as it
// came.
func encodeTools(ts []canon.Tool) []map[string]any {
	tools := make([]map[string]any, len(ts))
	for i, t := range ts {
		if len(t.Raw) > 0 {
			tools[i] = map[string]any{}
			_ = json.Unmarshal(t.Raw, &tools[i])
			continue
		}
		schema := t.Parameters
		if len(schema) == 0 {
			schema = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		tm := map[string]any{"name": t.Name, "input_schema": schema}
		if t.Description != "" {
			tm["description"] = t.Description
		}
		if len(t.CacheControl) > 0 {
			tm["cache_control"] = t.CacheControl
		}
		tools[i] = tm
	}
	return tools
}

// encodeToolChoice is tool_choice for a request with tools, or nil;
// parallel_tool_calls false becomes disable_parallel_tool_use.
func encodeToolChoice(req *canon.Request) map[string]any {
	var choice map[string]any
	if tc := req.ToolChoice; tc != nil {
		switch tc.Mode {
		case canon.ToolAuto:
			choice = map[string]any{"type": "auto"}
		case canon.ToolRequired:
			choice = map[string]any{"type": "any"}
		case canon.ToolNone:
			choice = map[string]any{"type": "none"}
		case canon.ToolNamed:
			choice = map[string]any{"type": "tool", "name": tc.Name}
		}
	}
	if req.ParallelToolCalls != nil && !*req.ParallelToolCalls {
		if choice == nil {
			choice = map[string]any{"type": "auto"}
		}
		if choice["type"] != "none" {
			choice["disable_parallel_tool_use"] = true
		}
	}
	return choice
}

func anthropicEvents(r *anResponse) []canon.Event {
	evs := []canon.Event{{Kind: canon.EvStart, ID: r.ID, Model: r.Model}}
	tool := 0
	for _, b := range r.Content {
		switch b.Type {
		case "text":
			if b.Text != "" {
				evs = append(evs, canon.Event{Kind: canon.EvText, Text: b.Text})
			}
		case "tool_use":
			args := string(b.Input)
			if strings.TrimSpace(args) == "" || args == "null" {
				args = "{}"
			}
			evs = append(evs,
				canon.Event{Kind: canon.EvToolStart, Index: tool, ToolID: b.ID, ToolName: b.Name},
				canon.Event{Kind: canon.EvToolArgs, Index: tool, Text: args},
				canon.Event{Kind: canon.EvToolEnd, Index: tool})
			tool++
		}
	}
	fin := canon.Event{Kind: canon.EvFinish, Finish: anthropicFinish(r.StopReason), Native: r.StopReason, NativeFamily: canon.FamilyAnthropic}
	if r.StopSequence != nil {
		fin.StopSequence = *r.StopSequence
	}
	return append(evs, fin, canon.Event{Kind: canon.EvUsage, Usage: r.Usage.canonical()})
}

type anStreamEvent struct {
	Type    string `json:"type"`
	Message *struct {
		ID    string  `json:"id"`
		Model string  `json:"model"`
		Usage anUsage `json:"usage"`
	} `json:"message"`
	Index        int      `json:"index"`
	ContentBlock *anBlock `json:"content_block"`
	Delta        *struct {
		Type         string  `json:"type"`
		Text         string  `json:"text"`
		PartialJSON  string  `json:"partial_json"`
		StopReason   string  `json:"stop_reason"`
		StopSequence *string `json:"stop_sequence"`
	} `json:"delta"`
	Usage *struct {
		InputTokens              *int64 `json:"input_tokens"`
		OutputTokens             int64  `json:"output_tokens"`
		CacheCreationInputTokens *int64 `json:"cache_creation_input_tokens"`
		CacheReadInputTokens     *int64 `json:"cache_read_input_tokens"`
	} `json:"usage"`
	Error *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

func anthropicErrorStatus(typ string) int {
	switch typ {
	case "overloaded_error":
		return 529
	case "rate_limit_error":
		return http.StatusTooManyRequests
	case "invalid_request_error":
		return http.StatusBadRequest
	case "authentication_error":
		return http.StatusUnauthorized
	case "permission_error":
		return http.StatusForbidden
	case "not_found_error":
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

// stream reads Anthropic's typed events (message_start, content_block_*,
// message_delta, message_stop, ping, error).
func (c *Connector) stream(ctx context.Context, resp *http.Response) canon.Stream {
	sse := canon.NewSSEReader(resp.Body)
	var usage anUsage
	toolOf := map[int]int{} // content block index -> tool index
	tools := 0
	finished, stopped := false, false
	q := &canon.QueueStream{Body: resp.Body, SSE: sse}
	q.Fill = func() ([]canon.Event, error) {
		if stopped {
			return nil, io.EOF
		}
		ev, err := sse.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if finished {
					stopped = true
					return []canon.Event{{Kind: canon.EvUsage, Usage: usage.canonical()}}, nil
				}
				return nil, &canon.UpstreamError{Provider: c.p.Name, Message: "upstream closed the stream early"}
			}
			return nil, c.p.ReadStreamErr(ctx, err)
		}
		var se anStreamEvent
		if err := json.Unmarshal(ev.Data, &se); err != nil {
			return nil, &canon.UpstreamError{Provider: c.p.Name, Status: http.StatusBadGateway, Message: "invalid stream event: " + canon.Truncate(c.p.Scrub(err.Error()), 200)}
		}
		switch se.Type {
		case "message_start":
			if se.Message == nil {
				return nil, nil
			}
			usage = se.Message.Usage
			return []canon.Event{{Kind: canon.EvStart, ID: se.Message.ID, Model: se.Message.Model, Usage: usage.canonical()}}, nil
		case "content_block_start":
			b := se.ContentBlock
			if b == nil {
				return nil, nil
			}
			switch b.Type {
			case "text":
				if b.Text != "" {
					return []canon.Event{{Kind: canon.EvText, Text: b.Text}}, nil
				}
			case "tool_use":
				toolOf[se.Index] = tools
				tools++
				evs := []canon.Event{{Kind: canon.EvToolStart, Index: toolOf[se.Index], ToolID: b.ID, ToolName: b.Name}}
				if in := strings.TrimSpace(string(b.Input)); in != "" && in != "{}" && in != "null" {
					evs = append(evs, canon.Event{Kind: canon.EvToolArgs, Index: toolOf[se.Index], Text: in})
				}
				return evs, nil
			}
		case "content_block_delta":
			if se.Delta == nil {
				return nil, nil
			}
			switch se.Delta.Type {
			case "text_delta":
				return []canon.Event{{Kind: canon.EvText, Text: se.Delta.Text}}, nil
			case "input_json_delta":
				if i, ok := toolOf[se.Index]; ok && se.Delta.PartialJSON != "" {
					return []canon.Event{{Kind: canon.EvToolArgs, Index: i, Text: se.Delta.PartialJSON}}, nil
				}
			}
		case "content_block_stop":
			if i, ok := toolOf[se.Index]; ok {
				return []canon.Event{{Kind: canon.EvToolEnd, Index: i}}, nil
			}
		case "message_delta":
			if u := se.Usage; u != nil {
				usage.OutputTokens = u.OutputTokens
				if u.InputTokens != nil {
					usage.InputTokens = *u.InputTokens
				}
				if u.CacheCreationInputTokens != nil {
					usage.CacheCreationInputTokens = *u.CacheCreationInputTokens
				}
				if u.CacheReadInputTokens != nil {
					usage.CacheReadInputTokens = *u.CacheReadInputTokens
				}
			}
			if se.Delta != nil && se.Delta.StopReason != "" && !finished {
				finished = true
				fin := canon.Event{Kind: canon.EvFinish, Finish: anthropicFinish(se.Delta.StopReason), Native: se.Delta.StopReason, NativeFamily: canon.FamilyAnthropic}
				if se.Delta.StopSequence != nil {
					fin.StopSequence = *se.Delta.StopSequence
				}
				return []canon.Event{fin}, nil
			}
		case "message_stop":
			if !finished {
				return nil, &canon.UpstreamError{Provider: c.p.Name, Message: "upstream stopped the message without a stop reason"}
			}
			stopped = true
			return []canon.Event{{Kind: canon.EvUsage, Usage: usage.canonical()}}, nil
		case "error":
			e := &canon.UpstreamError{Provider: c.p.Name, Status: http.StatusInternalServerError}
			if se.Error != nil {
				e.Type, e.Message, e.Status = se.Error.Type, canon.Truncate(c.p.Scrub(se.Error.Message), 500), anthropicErrorStatus(se.Error.Type)
			}
			return nil, e
		}
		return nil, nil
	}
	return q
}
