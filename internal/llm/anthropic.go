package llm

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"strings"
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
func (u *anUsage) canonical() Usage {
	return Usage{
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

func anthropicFinish(s string) FinishReason {
	switch s {
	case "end_turn", "stop_sequence":
		return FinishStop
	case "max_tokens", "model_context_window_exceeded":
		return FinishLength
	case "tool_use":
		return FinishToolCalls
	case "refusal":
		return FinishContentFilter
	}
	return FinishOther
}

type anthropicConnector struct {
	p         *provider
	maxTokens int // sent when the request has no limit; the API requires one
}

var _ Connector = (*anthropicConnector)(nil)

func (c *anthropicConnector) Chat(ctx context.Context, model string, req *Request) (Stream, error) {
	body, err := anthropicEncode(model, req, c.maxTokens)
	if err != nil {
		return nil, err
	}
	auth := func(h http.Header) {
		h.Set("x-api-key", c.p.key.reveal())
		h.Set("anthropic-version", anthropicVersion)
		if req.Family == FamilyAnthropic && req.Header != nil {
			if v := req.Header.Get("anthropic-version"); v != "" {
				h.Set("anthropic-version", v)
			}
			if v := req.Header.Values("anthropic-beta"); len(v) > 0 {
				h["Anthropic-Beta"] = v
			}
		}
	}
	resp, err := c.p.post(ctx, c.p.baseURL+"/messages", body, auth)
	if err != nil {
		return nil, err
	}
	if req.Stream {
		return c.stream(ctx, resp), nil
	}
	var out anResponse
	if err := c.p.decodeBody(ctx, resp, &out); err != nil {
		return nil, err
	}
	return sliceStream(anthropicEvents(&out)), nil
}

func (c *anthropicConnector) Embed(context.Context, string, *EmbedRequest) (*EmbedResponse, error) {
	return nil, &UpstreamError{Provider: c.p.name, Status: http.StatusNotImplemented, Message: "anthropic has no embeddings API", Err: ErrUnsupported}
}

// anthropicEncode renders req as a Messages API request: the system prompt
// goes top-level, tool calls become tool_use blocks with object input, tool
// results become tool_result blocks first in a user turn, and consecutive
// turns of one role are merged.
func anthropicEncode(model string, req *Request, defMaxTokens int) (map[string]any, error) {
	if err := checkPortable(req, FamilyAnthropic); err != nil {
		return nil, err
	}
	m := map[string]any{}
	if req.Family == FamilyAnthropic {
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
	if len(req.System) > 0 {
		cached := false
		for _, p := range req.System {
			cached = cached || len(p.CacheControl) > 0
		}
		if cached {
			blocks := make([]map[string]any, 0, len(req.System))
			for _, p := range req.System {
				b := map[string]any{"type": "text", "text": p.Text}
				if len(p.CacheControl) > 0 {
					b["cache_control"] = p.CacheControl
				}
				blocks = append(blocks, b)
			}
			m["system"] = blocks
		} else if s := req.SystemText(); s != "" {
			m["system"] = s
		}
	}
	type turn struct {
		role   string
		blocks []map[string]any
	}
	var turns []turn
	for _, msg := range req.Messages {
		role := "user"
		if msg.Role == RoleAssistant {
			role = "assistant"
		}
		var blocks []map[string]any
		for _, p := range msg.Parts {
			var b map[string]any
			switch p.Type {
			case PartText:
				if p.Text == "" {
					continue
				}
				b = map[string]any{"type": "text", "text": p.Text}
			case PartImage:
				if p.URL != "" {
					b = map[string]any{"type": "image", "source": map[string]string{"type": "url", "url": p.URL}}
				} else {
					b = map[string]any{"type": "image", "source": map[string]string{"type": "base64", "media_type": p.MediaType, "data": p.Data}}
				}
			case PartToolCall:
				input, err := objectArgs(p.Args)
				if err != nil {
					return nil, badRequest("tool call %s: %v", p.ToolID, err)
				}
				b = map[string]any{"type": "tool_use", "id": p.ToolID, "name": p.ToolName, "input": input}
			case PartToolResult:
				b = map[string]any{"type": "tool_result", "tool_use_id": p.ToolID, "content": p.Text}
				if p.IsError {
					b["is_error"] = true
				}
			case PartRaw:
				if p.Family != FamilyAnthropic {
					continue
				}
				var raw map[string]any
				if json.Unmarshal(p.Raw, &raw) != nil {
					continue
				}
				blocks = append(blocks, raw)
				continue
			default:
				continue
			}
			if len(p.CacheControl) > 0 {
				b["cache_control"] = p.CacheControl
			}
			blocks = append(blocks, b)
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
			// The API wants tool results before anything else in a turn.
			sort.SliceStable(t.blocks, func(a, b int) bool {
				return t.blocks[a]["type"] == "tool_result" && t.blocks[b]["type"] != "tool_result"
			})
		}
		msgs[i] = map[string]any{"role": t.role, "content": t.blocks}
	}
	m["messages"] = msgs
	if len(req.Tools) > 0 {
		tools := make([]map[string]any, len(req.Tools))
		for i, t := range req.Tools {
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
		m["tools"] = tools
	}
	var choice map[string]any
	if tc := req.ToolChoice; tc != nil {
		switch tc.Mode {
		case ToolAuto:
			choice = map[string]any{"type": "auto"}
		case ToolRequired:
			choice = map[string]any{"type": "any"}
		case ToolNone:
			choice = map[string]any{"type": "none"}
		case ToolNamed:
			choice = map[string]any{"type": "tool", "name": tc.Name}
		}
	}
	if req.ParallelToolCalls != nil && !*req.ParallelToolCalls && len(req.Tools) > 0 {
		if choice == nil {
			choice = map[string]any{"type": "auto"}
		}
		if choice["type"] != "none" {
			choice["disable_parallel_tool_use"] = true
		}
	}
	if choice != nil && len(req.Tools) > 0 {
		m["tool_choice"] = choice
	}
	setOpt(m, "temperature", req.Temperature)
	setOpt(m, "top_p", req.TopP)
	setOpt(m, "top_k", req.TopK)
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

func anthropicEvents(r *anResponse) []Event {
	evs := []Event{{Kind: EvStart, ID: r.ID, Model: r.Model}}
	tool := 0
	for _, b := range r.Content {
		switch b.Type {
		case "text":
			if b.Text != "" {
				evs = append(evs, Event{Kind: EvText, Text: b.Text})
			}
		case "tool_use":
			args := string(b.Input)
			if strings.TrimSpace(args) == "" || args == "null" {
				args = "{}"
			}
			evs = append(evs,
				Event{Kind: EvToolStart, Index: tool, ToolID: b.ID, ToolName: b.Name},
				Event{Kind: EvToolArgs, Index: tool, Text: args},
				Event{Kind: EvToolEnd, Index: tool})
			tool++
		}
	}
	fin := Event{Kind: EvFinish, Finish: anthropicFinish(r.StopReason), Native: r.StopReason, NativeFamily: FamilyAnthropic}
	if r.StopSequence != nil {
		fin.StopSequence = *r.StopSequence
	}
	return append(evs, fin, Event{Kind: EvUsage, Usage: r.Usage.canonical()})
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
func (c *anthropicConnector) stream(ctx context.Context, resp *http.Response) Stream {
	sse := newSSEReader(resp.Body)
	var usage anUsage
	toolOf := map[int]int{} // content block index -> tool index
	tools := 0
	finished, stopped := false, false
	q := &queueStream{body: resp.Body, sse: sse}
	q.fill = func() ([]Event, error) {
		if stopped {
			return nil, io.EOF
		}
		ev, err := sse.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if finished {
					stopped = true
					return []Event{{Kind: EvUsage, Usage: usage.canonical()}}, nil
				}
				return nil, &UpstreamError{Provider: c.p.name, Message: "upstream closed the stream early"}
			}
			return nil, c.p.readStreamErr(ctx, err)
		}
		var se anStreamEvent
		if err := json.Unmarshal(ev.Data, &se); err != nil {
			return nil, &UpstreamError{Provider: c.p.name, Status: http.StatusBadGateway, Message: "invalid stream event: " + truncate(c.p.scrub(err.Error()), 200)}
		}
		switch se.Type {
		case "message_start":
			if se.Message == nil {
				return nil, nil
			}
			usage = se.Message.Usage
			return []Event{{Kind: EvStart, ID: se.Message.ID, Model: se.Message.Model, Usage: usage.canonical()}}, nil
		case "content_block_start":
			b := se.ContentBlock
			if b == nil {
				return nil, nil
			}
			switch b.Type {
			case "text":
				if b.Text != "" {
					return []Event{{Kind: EvText, Text: b.Text}}, nil
				}
			case "tool_use":
				toolOf[se.Index] = tools
				tools++
				evs := []Event{{Kind: EvToolStart, Index: toolOf[se.Index], ToolID: b.ID, ToolName: b.Name}}
				if in := strings.TrimSpace(string(b.Input)); in != "" && in != "{}" && in != "null" {
					evs = append(evs, Event{Kind: EvToolArgs, Index: toolOf[se.Index], Text: in})
				}
				return evs, nil
			}
		case "content_block_delta":
			if se.Delta == nil {
				return nil, nil
			}
			switch se.Delta.Type {
			case "text_delta":
				return []Event{{Kind: EvText, Text: se.Delta.Text}}, nil
			case "input_json_delta":
				if i, ok := toolOf[se.Index]; ok && se.Delta.PartialJSON != "" {
					return []Event{{Kind: EvToolArgs, Index: i, Text: se.Delta.PartialJSON}}, nil
				}
			}
		case "content_block_stop":
			if i, ok := toolOf[se.Index]; ok {
				return []Event{{Kind: EvToolEnd, Index: i}}, nil
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
				fin := Event{Kind: EvFinish, Finish: anthropicFinish(se.Delta.StopReason), Native: se.Delta.StopReason, NativeFamily: FamilyAnthropic}
				if se.Delta.StopSequence != nil {
					fin.StopSequence = *se.Delta.StopSequence
				}
				return []Event{fin}, nil
			}
		case "message_stop":
			if !finished {
				return nil, &UpstreamError{Provider: c.p.name, Message: "upstream stopped the message without a stop reason"}
			}
			stopped = true
			return []Event{{Kind: EvUsage, Usage: usage.canonical()}}, nil
		case "error":
			e := &UpstreamError{Provider: c.p.name, Status: http.StatusInternalServerError}
			if se.Error != nil {
				e.Type, e.Message, e.Status = se.Error.Type, truncate(c.p.scrub(se.Error.Message), 500), anthropicErrorStatus(se.Error.Type)
			}
			return nil, e
		}
		return nil, nil
	}
	return q
}
