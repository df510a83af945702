package openai

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cortexrt/cortex/internal/jsonstr"
	"github.com/cortexrt/cortex/internal/llm/canon"
)

// The OpenAI-compatible ingress: parse /v1/chat/completions and
// /v1/embeddings requests, render answers in OpenAI's format.

var openAIKnown = map[string]bool{
	"model": true, "messages": true, "tools": true, "tool_choice": true,
	"parallel_tool_calls": true, "max_tokens": true, "max_completion_tokens": true,
	"temperature": true, "top_p": true, "top_k": true, "n": true, "stop": true,
	"stream": true, "stream_options": true, "seed": true, "presence_penalty": true,
	"frequency_penalty": true, "response_format": true,
}

type oaRequest struct {
	Model    string      `json:"model"`
	Messages []oaMessage `json:"messages"`
	Tools    []struct {
		Type     string `json:"type"`
		Function struct {
			Name        string          `json:"name"`
			Description string          `json:"description"`
			Parameters  json.RawMessage `json:"parameters"`
			Strict      *bool           `json:"strict"`
		} `json:"function"`
	} `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	TopK                *int            `json:"top_k"`
	N                   *int            `json:"n"`
	Stop                json.RawMessage `json:"stop"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Seed             *int64          `json:"seed"`
	PresencePenalty  *float64        `json:"presence_penalty"`
	FrequencyPenalty *float64        `json:"frequency_penalty"`
	ResponseFormat   json.RawMessage `json:"response_format"`
}

// ParseChat parses a chat completions request body.
func ParseChat(body []byte) (*canon.Request, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, canon.BadRequest("request body is not a JSON object: %v", err)
	}
	var in oaRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, canon.BadRequest("invalid chat completions request: %v", err)
	}
	if in.Model == "" {
		return nil, canon.BadRequest("model is required: name one of your llm.access aliases")
	}
	if len(in.Messages) == 0 {
		return nil, canon.BadRequest("messages must not be empty")
	}
	if in.N != nil && *in.N != 1 {
		return nil, canon.BadRequest("n=%d is not supported by the Cortex gateway; make n separate requests", *in.N)
	}
	req := &canon.Request{
		Model: in.Model, Family: canon.FamilyOpenAI, ParallelToolCalls: in.ParallelToolCalls,
		Temperature: in.Temperature, TopP: in.TopP, TopK: in.TopK, Seed: in.Seed,
		PresencePenalty: in.PresencePenalty, FrequencyPenalty: in.FrequencyPenalty,
		Stream: in.Stream, StreamUsage: in.StreamOptions != nil && in.StreamOptions.IncludeUsage,
	}
	if len(in.ResponseFormat) > 0 && string(in.ResponseFormat) != "null" {
		req.ResponseFormat = in.ResponseFormat
	}
	switch {
	case in.MaxCompletionTokens != nil:
		req.MaxTokens = *in.MaxCompletionTokens
	case in.MaxTokens != nil:
		req.MaxTokens = *in.MaxTokens
	}
	if req.MaxTokens < 0 {
		return nil, canon.BadRequest("max_tokens must not be negative")
	}
	if len(in.Stop) > 0 && string(in.Stop) != "null" {
		var one string
		if json.Unmarshal(in.Stop, &one) == nil {
			req.Stop = []string{one}
		} else if err := json.Unmarshal(in.Stop, &req.Stop); err != nil {
			return nil, canon.BadRequest("stop must be a string or a list of strings")
		}
	}
	for _, t := range in.Tools {
		if t.Type != "" && t.Type != "function" {
			return nil, canon.BadRequest("tool type %q is not supported; use function tools", t.Type)
		}
		if t.Function.Name == "" {
			return nil, canon.BadRequest("every tool needs function.name")
		}
		req.Tools = append(req.Tools, canon.Tool{Name: t.Function.Name, Description: t.Function.Description, Parameters: t.Function.Parameters, Strict: t.Function.Strict})
	}
	if len(in.ToolChoice) > 0 && string(in.ToolChoice) != "null" {
		var mode string
		if json.Unmarshal(in.ToolChoice, &mode) == nil {
			switch mode {
			case canon.ToolAuto, canon.ToolNone, canon.ToolRequired:
				req.ToolChoice = &canon.ToolChoice{Mode: mode}
			default:
				return nil, canon.BadRequest("tool_choice %q; use auto, none, required or a function", mode)
			}
		} else {
			var named struct {
				Function struct {
					Name string `json:"name"`
				} `json:"function"`
			}
			if json.Unmarshal(in.ToolChoice, &named) != nil || named.Function.Name == "" {
				return nil, canon.BadRequest("tool_choice must be auto, none, required or {\"type\":\"function\",\"function\":{\"name\":...}}")
			}
			req.ToolChoice = &canon.ToolChoice{Mode: canon.ToolNamed, Name: named.Function.Name}
		}
	}
	for i, m := range in.Messages {
		if err := addOpenAIMessage(req, m); err != nil {
			return nil, canon.BadRequest("messages[%d]: %v", i, err)
		}
	}
	for k, v := range raw {
		if !openAIKnown[k] {
			if req.Extra == nil {
				req.Extra = map[string]json.RawMessage{}
			}
			req.Extra[k] = v
		}
	}
	canon.NameToolResults(req)
	return req, nil
}

// openAIContent reads a content field: a string, null, or a list of parts.
func openAIContent(raw json.RawMessage) ([]canon.Part, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []canon.Part{{Type: canon.PartText, Text: s}}, nil
	}
	var parts []oaContentPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, fmt.Errorf("content must be a string or a list of parts")
	}
	var out []canon.Part
	for _, p := range parts {
		switch p.Type {
		case "text", "refusal":
			out = append(out, canon.Part{Type: canon.PartText, Text: p.Text})
		case "image_url":
			if p.ImageURL == nil || p.ImageURL.URL == "" {
				return nil, fmt.Errorf("image_url part needs image_url.url")
			}
			if media, data, ok := canon.ParseDataURL(p.ImageURL.URL); ok {
				out = append(out, canon.Part{Type: canon.PartImage, MediaType: media, Data: data})
			} else {
				out = append(out, canon.Part{Type: canon.PartImage, URL: p.ImageURL.URL})
			}
		default:
			return nil, fmt.Errorf("content part type %q is not supported", p.Type)
		}
	}
	return out, nil
}

func addOpenAIMessage(req *canon.Request, m oaMessage) error {
	parts, err := openAIContent(m.Content)
	if err != nil {
		return err
	}
	switch m.Role {
	case "system", "developer":
		for _, p := range parts {
			if p.Type != canon.PartText {
				return fmt.Errorf("a system message may only hold text")
			}
			req.System = append(req.System, p)
		}
	case "user":
		req.Messages = append(req.Messages, canon.Message{Role: canon.RoleUser, Parts: parts})
	case "assistant":
		msg := canon.Message{Role: canon.RoleAssistant}
		for _, p := range parts {
			if p.Text != "" {
				msg.Parts = append(msg.Parts, p)
			}
		}
		for _, tc := range m.ToolCalls {
			if tc.ID == "" || tc.Function.Name == "" {
				return fmt.Errorf("tool_calls need id and function.name")
			}
			msg.Parts = append(msg.Parts, canon.Part{Type: canon.PartToolCall, ToolID: tc.ID, ToolName: tc.Function.Name, Args: tc.Function.Arguments})
		}
		req.Messages = append(req.Messages, msg)
	case "tool":
		if m.ToolCallID == "" {
			return fmt.Errorf("a tool message needs tool_call_id")
		}
		var text strings.Builder
		for _, p := range parts {
			text.WriteString(p.Text)
		}
		res := canon.Part{Type: canon.PartToolResult, ToolID: m.ToolCallID, Text: text.String()}
		// Consecutive tool messages answer one assistant turn: keep them
		// in one user turn.
		if n := len(req.Messages); n > 0 && onlyToolResults(req.Messages[n-1]) {
			req.Messages[n-1].Parts = append(req.Messages[n-1].Parts, res)
		} else {
			req.Messages = append(req.Messages, canon.Message{Role: canon.RoleUser, Parts: []canon.Part{res}})
		}
	default:
		return fmt.Errorf("role %q is not supported; use system, developer, user, assistant or tool", m.Role)
	}
	return nil
}

func onlyToolResults(m canon.Message) bool {
	if m.Role != canon.RoleUser || len(m.Parts) == 0 {
		return false
	}
	for _, p := range m.Parts {
		if p.Type != canon.PartToolResult {
			return false
		}
	}
	return true
}

// openAIFinishOut is the finish_reason an OpenAI client sees. A reason
// from another family with no OpenAI word is kept in native_finish_reason.
func openAIFinishOut(r *canon.Response) (finish, native string) {
	if r.NativeFamily == canon.FamilyOpenAI && r.Native != "" {
		return r.Native, ""
	}
	switch r.Finish {
	case canon.FinishOther, "":
		finish = "stop"
	default:
		finish = string(r.Finish)
	}
	return finish, r.Native
}

func openAIUsageOut(u canon.Usage) *oaUsage {
	out := &oaUsage{PromptTokens: u.InputTokens, CompletionTokens: u.OutputTokens, TotalTokens: u.Total()}
	out.PromptTokensDetails = &struct {
		CachedTokens int64 `json:"cached_tokens"`
	}{u.CacheReadTokens}
	return out
}

type oaMessageOut struct {
	Role      string       `json:"role"`
	Content   *string      `json:"content"`
	Refusal   *string      `json:"refusal"`
	ToolCalls []oaToolCall `json:"tool_calls,omitempty"`
}

type oaChoiceOut struct {
	Index              int           `json:"index"`
	Message            *oaMessageOut `json:"message,omitempty"`
	Delta              *oaDeltaOut   `json:"delta,omitempty"`
	Logprobs           *struct{}     `json:"logprobs"`
	FinishReason       *string       `json:"finish_reason"`
	NativeFinishReason string        `json:"native_finish_reason,omitempty"`
}

type oaDeltaOut struct {
	Role      string       `json:"role,omitempty"`
	Content   *string      `json:"content,omitempty"`
	ToolCalls []oaToolCall `json:"tool_calls,omitempty"`
}

type oaCompletionOut struct {
	ID                string        `json:"id"`
	Object            string        `json:"object"`
	Created           int64         `json:"created"`
	Model             string        `json:"model"`
	Choices           []oaChoiceOut `json:"choices"`
	Usage             *oaUsage      `json:"usage,omitempty"`
	SystemFingerprint *string       `json:"system_fingerprint"`
}

func openAIID(id string) string {
	if strings.HasPrefix(id, "chatcmpl-") {
		return id
	}
	return "chatcmpl-" + strings.TrimPrefix(id, "msg_")
}

// Render renders a complete response as a chat.completion.
func Render(r *canon.Response) []byte {
	msg := &oaMessageOut{Role: "assistant"}
	var text strings.Builder
	hasText := false
	for _, p := range r.Parts {
		switch p.Type {
		case canon.PartText:
			text.WriteString(p.Text)
			hasText = true
		case canon.PartToolCall:
			msg.ToolCalls = append(msg.ToolCalls, oaToolCall{ID: p.ToolID, Type: "function", Function: oaFunction{Name: p.ToolName, Arguments: p.Args}})
		}
	}
	if hasText || len(msg.ToolCalls) == 0 {
		s := text.String()
		msg.Content = &s
	}
	finish, native := openAIFinishOut(r)
	out := oaCompletionOut{
		ID: openAIID(r.ID), Object: "chat.completion", Created: r.Created, Model: r.Model,
		Choices: []oaChoiceOut{{Index: 0, Message: msg, FinishReason: &finish, NativeFinishReason: native}},
		Usage:   openAIUsageOut(r.Usage),
	}
	b, _ := json.Marshal(out)
	return b
}

// StreamWriter writes chat.completion.chunk events as they come.
type StreamWriter struct {
	w            http.ResponseWriter
	id           string
	model        string
	created      int64
	includeUsage bool
	argsSent     map[int]bool
	buf          []byte
	hold         bool
	textPrefix   []byte // a text chunk up to its content string
	data         []byte
}

const openAITextSuffix = `},"logprobs":null,"finish_reason":null}],"system_fingerprint":null}`

func (s *StreamWriter) SetHold(h bool) { s.hold = h }

func NewStreamWriter(w http.ResponseWriter, includeUsage bool) *StreamWriter {
	return &StreamWriter{w: w, includeUsage: includeUsage, created: time.Now().Unix(), argsSent: map[int]bool{}}
}

func (s *StreamWriter) chunk(ch oaChoiceOut, usage *oaUsage, noChoices bool) error {
	out := oaCompletionOut{ID: s.id, Object: "chat.completion.chunk", Created: s.created, Model: s.model, Usage: usage}
	if !noChoices {
		out.Choices = []oaChoiceOut{ch}
	} else {
		out.Choices = []oaChoiceOut{}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return s.write(b)
}

func (s *StreamWriter) write(data []byte) error {
	s.buf = canon.AppendSSE(s.buf[:0], "", data)
	if _, err := s.w.Write(s.buf); err != nil {
		return err
	}
	if f, ok := s.w.(http.Flusher); ok && !s.hold {
		f.Flush()
	}
	return nil
}

func (s *StreamWriter) Event(ev canon.Event) error {
	switch ev.Kind {
	case canon.EvStart:
		s.id, s.model = openAIID(ev.ID), ev.Model
		p := append([]byte(`{"id":`), jsonstr.Append(nil, s.id)...)
		p = append(p, `,"object":"chat.completion.chunk","created":`...)
		p = strconv.AppendInt(p, s.created, 10)
		p = append(p, `,"model":`...)
		p = jsonstr.Append(p, s.model)
		s.textPrefix = append(p, `,"choices":[{"index":0,"delta":{"content":`...)
		empty := ""
		return s.chunk(oaChoiceOut{Delta: &oaDeltaOut{Role: "assistant", Content: &empty}}, nil, false)
	case canon.EvText:
		// The hot path: rendered without reflection, byte for byte what
		// chunk would produce.
		s.data = append(s.data[:0], s.textPrefix...)
		s.data = jsonstr.Append(s.data, ev.Text)
		s.data = append(s.data, openAITextSuffix...)
		return s.write(s.data)
	case canon.EvToolStart:
		i := ev.Index
		return s.chunk(oaChoiceOut{Delta: &oaDeltaOut{ToolCalls: []oaToolCall{{Index: &i, ID: ev.ToolID, Type: "function", Function: oaFunction{Name: ev.ToolName}}}}}, nil, false)
	case canon.EvToolArgs:
		i := ev.Index
		s.argsSent[i] = true
		return s.chunk(oaChoiceOut{Delta: &oaDeltaOut{ToolCalls: []oaToolCall{{Index: &i, Function: oaFunction{Arguments: ev.Text}}}}}, nil, false)
	case canon.EvToolEnd:
		if !s.argsSent[ev.Index] {
			return s.Event(canon.Event{Kind: canon.EvToolArgs, Index: ev.Index, Text: "{}"})
		}
	case canon.EvFinish:
		finish, native := openAIFinishOut(&canon.Response{Finish: ev.Finish, Native: ev.Native, NativeFamily: ev.NativeFamily})
		return s.chunk(oaChoiceOut{Delta: &oaDeltaOut{}, FinishReason: &finish, NativeFinishReason: native}, nil, false)
	case canon.EvUsage:
		if s.includeUsage {
			return s.chunk(oaChoiceOut{}, openAIUsageOut(ev.Usage), true)
		}
	}
	return nil
}

// End finishes the stream: [DONE] after a complete answer, an error event
// (which the OpenAI SDKs raise) after a broken one.
func (s *StreamWriter) End(err error) error {
	if err == nil {
		return s.write(doneMarker)
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": err.Error(), "type": "upstream_error", "code": nil, "param": nil}})
	return s.write(b)
}

// ErrorBody is the error body OpenAI clients understand.
func ErrorBody(status int, msg string) []byte {
	typ := "invalid_request_error"
	code := ""
	switch status {
	case http.StatusUnauthorized:
		typ, code = "authentication_error", "invalid_api_key"
	case http.StatusForbidden:
		typ, code = "permission_error", "model_not_allowed"
	case http.StatusNotFound:
		typ, code = "invalid_request_error", "model_not_found"
	case http.StatusTooManyRequests:
		typ, code = "rate_limit_error", "budget_exceeded"
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusInternalServerError:
		typ = "api_error"
	}
	e := map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}
	if code != "" {
		e["code"] = code
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	return b
}

// ParseEmbed parses an embeddings request. The encoding format is
// applied by the gateway (float or base64), not forwarded.
func ParseEmbed(body []byte) (*canon.EmbedRequest, string, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, "", canon.BadRequest("request body is not a JSON object: %v", err)
	}
	var in struct {
		Model          string          `json:"model"`
		Input          json.RawMessage `json:"input"`
		Dimensions     *int            `json:"dimensions"`
		EncodingFormat string          `json:"encoding_format"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, "", canon.BadRequest("invalid embeddings request: %v", err)
	}
	if in.Model == "" {
		return nil, "", canon.BadRequest("model is required: name one of your llm.access aliases")
	}
	req := &canon.EmbedRequest{Model: in.Model, Dimensions: in.Dimensions}
	var one string
	if json.Unmarshal(in.Input, &one) == nil {
		req.Input = []string{one}
	} else if err := json.Unmarshal(in.Input, &req.Input); err != nil {
		return nil, "", canon.BadRequest("input must be a string or a list of strings (token arrays are not supported)")
	}
	if len(req.Input) == 0 {
		return nil, "", canon.BadRequest("input must not be empty")
	}
	switch in.EncodingFormat {
	case "", "float", "base64":
	default:
		return nil, "", canon.BadRequest("encoding_format %q; use float or base64", in.EncodingFormat)
	}
	for k, v := range raw {
		switch k {
		case "model", "input", "dimensions", "encoding_format":
		default:
			if req.Extra == nil {
				req.Extra = map[string]json.RawMessage{}
			}
			req.Extra[k] = v
		}
	}
	return req, in.EncodingFormat, nil
}

// RenderEmbed renders vectors as OpenAI does; base64 is the
// little-endian float32 encoding the OpenAI SDKs decode.
func RenderEmbed(r *canon.EmbedResponse, format string) []byte {
	var b bytes.Buffer
	b.WriteString(`{"object":"list","data":[`)
	for i, v := range r.Vectors {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"object":"embedding","index":%d,"embedding":`, i)
		if format == "base64" {
			raw := make([]byte, 4*len(v))
			for j, f := range v {
				binary.LittleEndian.PutUint32(raw[4*j:], math.Float32bits(float32(f)))
			}
			b.WriteByte('"')
			b.WriteString(base64.StdEncoding.EncodeToString(raw))
			b.WriteByte('"')
		} else {
			vec, _ := json.Marshal(v)
			b.Write(vec)
		}
		b.WriteByte('}')
	}
	model, _ := json.Marshal(r.Model)
	fmt.Fprintf(&b, `],"model":%s,"usage":{"prompt_tokens":%d,"total_tokens":%d}}`, model, r.Usage.InputTokens, r.Usage.InputTokens)
	return b.Bytes()
}
