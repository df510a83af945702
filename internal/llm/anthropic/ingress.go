package anthropic

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/cortexrt/cortex/internal/jsonstr"
	"github.com/cortexrt/cortex/internal/llm/canon"
)

// The Anthropic-compatible ingress: parse /v1/messages requests, render
// answers as Anthropic messages and typed stream events.

var anthropicKnown = map[string]bool{
	"model": true, "messages": true, "system": true, "max_tokens": true, "tools": true,
	"tool_choice": true, "temperature": true, "top_p": true, "top_k": true,
	"stop_sequences": true, "stream": true,
}

type anRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	System     json.RawMessage   `json:"system"`
	MaxTokens  *int              `json:"max_tokens"`
	Tools      []json.RawMessage `json:"tools"`
	ToolChoice *struct {
		Type                   string `json:"type"`
		Name                   string `json:"name"`
		DisableParallelToolUse *bool  `json:"disable_parallel_tool_use"`
	} `json:"tool_choice"`
	Temperature   *float64 `json:"temperature"`
	TopP          *float64 `json:"top_p"`
	TopK          *int     `json:"top_k"`
	StopSequences []string `json:"stop_sequences"`
	Stream        bool     `json:"stream"`
}

// Parse parses a Messages API request body.
func Parse(body []byte, h http.Header) (*canon.Request, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, canon.BadRequest("request body is not a JSON object: %v", err)
	}
	var in anRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, canon.BadRequest("invalid messages request: %v", err)
	}
	if in.Model == "" {
		return nil, canon.BadRequest("model is required: name one of your llm.access aliases")
	}
	if len(in.Messages) == 0 {
		return nil, canon.BadRequest("messages must not be empty")
	}
	req := &canon.Request{
		Model: in.Model, Family: canon.FamilyAnthropic, Temperature: in.Temperature, TopP: in.TopP,
		TopK: in.TopK, Stop: in.StopSequences, Stream: in.Stream, StreamUsage: true,
	}
	if in.MaxTokens != nil {
		if *in.MaxTokens < 1 {
			return nil, canon.BadRequest("max_tokens must be at least 1")
		}
		req.MaxTokens = *in.MaxTokens
	}
	if h != nil {
		req.Header = http.Header{}
		for _, k := range []string{"anthropic-version", "anthropic-beta"} {
			if v := h.Values(k); len(v) > 0 {
				req.Header[http.CanonicalHeaderKey(k)] = v
			}
		}
	}
	if len(in.System) > 0 && string(in.System) != "null" {
		var s string
		if json.Unmarshal(in.System, &s) == nil {
			if s != "" {
				req.System = []canon.Part{{Type: canon.PartText, Text: s}}
			}
		} else {
			var blocks []anBlock
			if err := json.Unmarshal(in.System, &blocks); err != nil {
				return nil, canon.BadRequest("system must be a string or a list of text blocks")
			}
			for _, b := range blocks {
				if b.Type != "text" {
					return nil, canon.BadRequest("system blocks must be text, not %q", b.Type)
				}
				req.System = append(req.System, canon.Part{Type: canon.PartText, Text: b.Text, CacheControl: b.CacheControl})
			}
		}
	}
	for i, t := range in.Tools {
		var tool struct {
			Type         string          `json:"type"`
			Name         string          `json:"name"`
			Description  string          `json:"description"`
			InputSchema  json.RawMessage `json:"input_schema"`
			CacheControl json.RawMessage `json:"cache_control"`
		}
		if err := json.Unmarshal(t, &tool); err != nil {
			return nil, canon.BadRequest("tools[%d]: %v", i, err)
		}
		if tool.Type != "" && tool.Type != "custom" {
			// A server tool (web_search, code_execution, ...): only Anthropic runs it.
			req.Tools = append(req.Tools, canon.Tool{Name: tool.Name, Raw: t, Family: canon.FamilyAnthropic})
			continue
		}
		if tool.Name == "" {
			return nil, canon.BadRequest("tools[%d]: name is required", i)
		}
		req.Tools = append(req.Tools, canon.Tool{Name: tool.Name, Description: tool.Description, Parameters: tool.InputSchema, CacheControl: tool.CacheControl})
	}
	if tc := in.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto":
			req.ToolChoice = &canon.ToolChoice{Mode: canon.ToolAuto}
		case "any":
			req.ToolChoice = &canon.ToolChoice{Mode: canon.ToolRequired}
		case "none":
			req.ToolChoice = &canon.ToolChoice{Mode: canon.ToolNone}
		case "tool":
			if tc.Name == "" {
				return nil, canon.BadRequest("tool_choice of type tool needs a name")
			}
			req.ToolChoice = &canon.ToolChoice{Mode: canon.ToolNamed, Name: tc.Name}
		default:
			return nil, canon.BadRequest("tool_choice.type %q; use auto, any, none or tool", tc.Type)
		}
		if tc.DisableParallelToolUse != nil && *tc.DisableParallelToolUse {
			f := false
			req.ParallelToolCalls = &f
		}
	}
	for i, m := range in.Messages {
		var role string
		switch m.Role {
		case "user":
			role = canon.RoleUser
		case "assistant":
			role = canon.RoleAssistant
		default:
			return nil, canon.BadRequest("messages[%d].role %q; use user or assistant (the system prompt goes in system)", i, m.Role)
		}
		parts, err := anthropicContent(m.Content)
		if err != nil {
			return nil, canon.BadRequest("messages[%d]: %v", i, err)
		}
		req.Messages = append(req.Messages, canon.Message{Role: role, Parts: parts})
	}
	for k, v := range raw {
		if !anthropicKnown[k] {
			if req.Extra == nil {
				req.Extra = map[string]json.RawMessage{}
			}
			req.Extra[k] = v
		}
	}
	canon.NameToolResults(req)
	return req, nil
}

func anthropicContent(raw json.RawMessage) ([]canon.Part, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []canon.Part{{Type: canon.PartText, Text: s}}, nil
	}
	var blocks []json.RawMessage
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, fmt.Errorf("content must be a string or a list of blocks")
	}
	var out []canon.Part
	for _, rb := range blocks {
		var b anBlock
		if err := json.Unmarshal(rb, &b); err != nil {
			return nil, err
		}
		switch b.Type {
		case "text":
			out = append(out, canon.Part{Type: canon.PartText, Text: b.Text, CacheControl: b.CacheControl})
		case "image":
			if b.Source == nil {
				return nil, fmt.Errorf("image block needs a source")
			}
			switch b.Source.Type {
			case "base64":
				out = append(out, canon.Part{Type: canon.PartImage, MediaType: b.Source.MediaType, Data: b.Source.Data, CacheControl: b.CacheControl})
			case "url":
				out = append(out, canon.Part{Type: canon.PartImage, URL: b.Source.URL, CacheControl: b.CacheControl})
			default:
				return nil, fmt.Errorf("image source type %q is not supported", b.Source.Type)
			}
		case "tool_use":
			args := strings.TrimSpace(string(b.Input))
			if args == "" || args == "null" {
				args = "{}"
			}
			out = append(out, canon.Part{Type: canon.PartToolCall, ToolID: b.ID, ToolName: b.Name, Args: args, CacheControl: b.CacheControl})
		case "tool_result":
			text, err := toolResultText(b.Content)
			if err != nil {
				return nil, err
			}
			out = append(out, canon.Part{Type: canon.PartToolResult, ToolID: b.ToolUseID, Text: text, IsError: b.IsError, CacheControl: b.CacheControl})
		case "thinking", "redacted_thinking":
			// Meaningful only to Anthropic; other families drop it.
			out = append(out, canon.Part{Type: canon.PartRaw, Raw: rb, Family: canon.FamilyAnthropic})
		default:
			// document, search_result, server tool results: Anthropic only.
			out = append(out, canon.Part{Type: canon.PartRaw, Raw: rb, Family: canon.FamilyAnthropic, Required: true})
		}
	}
	return out, nil
}

// toolResultText flattens a tool_result content (a string or text blocks).
func toolResultText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var blocks []anBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return "", fmt.Errorf("tool_result content must be a string or blocks")
	}
	var b strings.Builder
	for _, bl := range blocks {
		switch bl.Type {
		case "text":
			b.WriteString(bl.Text)
		default:
			return "", fmt.Errorf("tool_result blocks of type %q are not supported by the gateway", bl.Type)
		}
	}
	return b.String(), nil
}

// anthropicStopOut is the stop_reason an Anthropic client sees, and the
// foreign native reason kept beside it.
func anthropicStopOut(finish canon.FinishReason, native, family, stopSeq string) (stop, nativeOut string) {
	if family == canon.FamilyAnthropic && native != "" {
		return native, ""
	}
	switch finish {
	case canon.FinishLength:
		stop = "max_tokens"
	case canon.FinishToolCalls:
		stop = "tool_use"
	case canon.FinishContentFilter:
		stop = "refusal"
	case canon.FinishMalformedCall:
		stop = string(canon.FinishMalformedCall)
	default:
		stop = "end_turn"
		if stopSeq != "" {
			stop = "stop_sequence"
		}
	}
	return stop, native
}

type anUsageOut struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
}

// anthropicUsageOut reports usage in Anthropic's terms, where input_tokens
// excludes cache reads and writes.
func anthropicUsageOut(u canon.Usage) anUsageOut {
	in := u.InputTokens - u.CacheReadTokens - u.CacheWriteTokens
	if in < 0 {
		in = 0
	}
	return anUsageOut{InputTokens: in, OutputTokens: u.OutputTokens, CacheCreationInputTokens: u.CacheWriteTokens, CacheReadInputTokens: u.CacheReadTokens}
}

// anthropicInput renders tool arguments as the object Anthropic clients
// expect; arguments a model produced as invalid JSON are kept as a string
// under _invalid_json rather than lost.
func anthropicInput(args string) json.RawMessage {
	if in, err := canon.ObjectArgs(args); err == nil {
		return in
	}
	b, _ := json.Marshal(map[string]string{"_invalid_json": args})
	return b
}

func anthropicID(id string) string {
	if strings.HasPrefix(id, "msg_") {
		return id
	}
	return "msg_" + strings.TrimPrefix(id, "chatcmpl-")
}

type anMessageOut struct {
	ID               string           `json:"id"`
	Type             string           `json:"type"`
	Role             string           `json:"role"`
	Model            string           `json:"model"`
	Content          []map[string]any `json:"content"`
	StopReason       *string          `json:"stop_reason"`
	StopSequence     *string          `json:"stop_sequence"`
	NativeStopReason string           `json:"native_stop_reason,omitempty"`
	Usage            anUsageOut       `json:"usage"`
}

// Render renders a complete response as an Anthropic message.
func Render(r *canon.Response) []byte {
	out := anMessageOut{ID: anthropicID(r.ID), Type: "message", Role: "assistant", Model: r.Model, Content: []map[string]any{}, Usage: anthropicUsageOut(r.Usage)}
	for _, p := range r.Parts {
		switch p.Type {
		case canon.PartText:
			out.Content = append(out.Content, map[string]any{"type": "text", "text": p.Text})
		case canon.PartToolCall:
			out.Content = append(out.Content, map[string]any{"type": "tool_use", "id": p.ToolID, "name": p.ToolName, "input": anthropicInput(p.Args)})
		}
	}
	stop, native := anthropicStopOut(r.Finish, r.Native, r.NativeFamily, r.StopSequence)
	out.StopReason, out.NativeStopReason = &stop, native
	if r.StopSequence != "" {
		out.StopSequence = &r.StopSequence
	}
	b, _ := json.Marshal(out)
	return b
}

// StreamWriter writes Anthropic's typed stream events. Content blocks are
// opened and closed around runs of text and tool calls; the stop reason and
// final usage go out in message_delta at the end.
type StreamWriter struct {
	w       http.ResponseWriter
	block   int    // index of the open block, -1 when none
	kind    string // "text" or "tool_use"
	next    int
	toolBlk map[int]int
	finish  canon.Event
	usage   canon.Usage
	buf     []byte
	hold    bool
	data    []byte
}

func (s *StreamWriter) SetHold(h bool) { s.hold = h }

func NewStreamWriter(w http.ResponseWriter) *StreamWriter {
	return &StreamWriter{w: w, block: -1, toolBlk: map[int]int{}}
}

func (s *StreamWriter) send(typ string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.sendRaw(typ, b)
}

func (s *StreamWriter) sendRaw(typ string, b []byte) error {
	s.buf = canon.AppendSSE(s.buf[:0], typ, b)
	if _, err := s.w.Write(s.buf); err != nil {
		return err
	}
	if f, ok := s.w.(http.Flusher); ok && !s.hold {
		f.Flush()
	}
	return nil
}

func (s *StreamWriter) closeBlock() error {
	if s.block < 0 {
		return nil
	}
	i := s.block
	s.block = -1
	return s.send("content_block_stop", map[string]any{"type": "content_block_stop", "index": i})
}

func (s *StreamWriter) open(kind string, block map[string]any) error {
	if err := s.closeBlock(); err != nil {
		return err
	}
	s.block, s.kind = s.next, kind
	s.next++
	return s.send("content_block_start", map[string]any{"type": "content_block_start", "index": s.block, "content_block": block})
}

func (s *StreamWriter) Event(ev canon.Event) error {
	switch ev.Kind {
	case canon.EvStart:
		s.usage = ev.Usage
		msg := map[string]any{
			"id": anthropicID(ev.ID), "type": "message", "role": "assistant", "model": ev.Model,
			"content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": anthropicUsageOut(ev.Usage),
		}
		return s.send("message_start", map[string]any{"type": "message_start", "message": msg})
	case canon.EvText:
		if s.block < 0 || s.kind != "text" {
			if err := s.open("text", map[string]any{"type": "text", "text": ""}); err != nil {
				return err
			}
		}
		// The hot path, rendered without reflection.
		s.data = append(s.data[:0], `{"type":"content_block_delta","index":`...)
		s.data = strconv.AppendInt(s.data, int64(s.block), 10)
		s.data = append(s.data, `,"delta":{"type":"text_delta","text":`...)
		s.data = jsonstr.Append(s.data, ev.Text)
		s.data = append(s.data, "}}"...)
		return s.sendRaw("content_block_delta", s.data)
	case canon.EvToolStart:
		if err := s.open("tool_use", map[string]any{"type": "tool_use", "id": ev.ToolID, "name": ev.ToolName, "input": map[string]any{}}); err != nil {
			return err
		}
		s.toolBlk[ev.Index] = s.block
	case canon.EvToolArgs:
		blk, ok := s.toolBlk[ev.Index]
		if !ok || ev.Text == "" {
			return nil
		}
		return s.send("content_block_delta", map[string]any{"type": "content_block_delta", "index": blk, "delta": map[string]string{"type": "input_json_delta", "partial_json": ev.Text}})
	case canon.EvFinish:
		s.finish = ev
	case canon.EvUsage:
		s.usage = ev.Usage
	}
	return nil
}

func (s *StreamWriter) End(err error) error {
	if err != nil {
		return s.send("error", map[string]any{"type": "error", "error": map[string]string{"type": "api_error", "message": err.Error()}})
	}
	if err := s.closeBlock(); err != nil {
		return err
	}
	stop, native := anthropicStopOut(s.finish.Finish, s.finish.Native, s.finish.NativeFamily, s.finish.StopSequence)
	delta := map[string]any{"stop_reason": stop, "stop_sequence": nil}
	if s.finish.StopSequence != "" {
		delta["stop_sequence"] = s.finish.StopSequence
	}
	if native != "" {
		delta["native_stop_reason"] = native
	}
	if err := s.send("message_delta", map[string]any{"type": "message_delta", "delta": delta, "usage": anthropicUsageOut(s.usage)}); err != nil {
		return err
	}
	return s.send("message_stop", map[string]any{"type": "message_stop"})
}

// ErrorBody is the error body Anthropic clients understand.
func ErrorBody(status int, msg string) []byte {
	typ := "invalid_request_error"
	switch status {
	case http.StatusUnauthorized:
		typ = "authentication_error"
	case http.StatusForbidden:
		typ = "permission_error"
	case http.StatusNotFound:
		typ = "not_found_error"
	case http.StatusTooManyRequests:
		typ = "rate_limit_error"
	case http.StatusServiceUnavailable:
		typ = "overloaded_error"
	case http.StatusBadGateway, http.StatusGatewayTimeout, http.StatusInternalServerError:
		typ = "api_error"
	}
	b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]string{"type": typ, "message": msg}})
	return b
}
