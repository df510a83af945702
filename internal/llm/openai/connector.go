package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/cortexrt/cortex/internal/llm/canon"
)

// OpenAI chat completions wire types, shared by the OpenAI connector and the
// OpenAI-compatible ingress.

type oaMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content,omitempty"` // string, parts, or null
	Name       string          `json:"name,omitempty"`
	ToolCalls  []oaToolCall    `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
	Refusal    *string         `json:"refusal,omitempty"`
}

type oaContentPart struct {
	Type     string `json:"type"`
	Text     string `json:"text,omitempty"`
	ImageURL *struct {
		URL    string `json:"url"`
		Detail string `json:"detail,omitempty"`
	} `json:"image_url,omitempty"`
}

type oaToolCall struct {
	Index    *int       `json:"index,omitempty"`
	ID       string     `json:"id,omitempty"`
	Type     string     `json:"type,omitempty"`
	Function oaFunction `json:"function"`
}

type oaFunction struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

type oaUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	TotalTokens         int64 `json:"total_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details,omitempty"`
}

func (u *oaUsage) canonical() canon.Usage {
	out := canon.Usage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens}
	if u.PromptTokensDetails != nil {
		out.CacheReadTokens = u.PromptTokensDetails.CachedTokens
	}
	return out
}

type oaResponse struct {
	ID      string `json:"id"`
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Content   *string      `json:"content"`
			Refusal   *string      `json:"refusal"`
			ToolCalls []oaToolCall `json:"tool_calls"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *oaUsage `json:"usage"`
}

type oaChunk struct {
	ID      string `json:"id"`
	Model   string `json:"model"`
	Choices []struct {
		Delta struct {
			Content   *string      `json:"content"`
			Refusal   *string      `json:"refusal"`
			ToolCalls []oaToolCall `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *oaUsage        `json:"usage"`
	Error json.RawMessage `json:"error"`
}

func openAIFinish(s string) canon.FinishReason {
	switch s {
	case "stop":
		return canon.FinishStop
	case "length":
		return canon.FinishLength
	case "tool_calls", "function_call":
		return canon.FinishToolCalls
	case "content_filter":
		return canon.FinishContentFilter
	}
	return canon.FinishOther
}

// Connector serves kind openai and, with compatible set, any
// OpenAI-compatible server (Ollama, vLLM, llama.cpp).
type Connector struct {
	p          *canon.Provider
	compatible bool
}

// New returns the connector of p; compatible is for OpenAI-compatible
// servers, which may have no key and take fewer fields.
func New(p *canon.Provider, compatible bool) *Connector {
	return &Connector{p: p, compatible: compatible}
}

var _ canon.Connector = (*Connector)(nil)

func (c *Connector) auth(h http.Header) {
	if k := c.p.Key.Reveal(); k != "" {
		h.Set("Authorization", "Bearer "+k)
	}
}

func (c *Connector) Chat(ctx context.Context, model string, req *canon.Request) (canon.Stream, error) {
	body, err := c.Encode(model, req)
	if err != nil {
		return nil, err
	}
	resp, err := c.p.Post(ctx, c.p.BaseURL+"/chat/completions", body, c.auth)
	if err != nil {
		return nil, err
	}
	if req.Stream {
		return c.stream(ctx, resp), nil
	}
	var out oaResponse
	if err := c.p.DecodeBody(ctx, resp, &out); err != nil {
		return nil, err
	}
	return canon.SliceStream(openAIEvents(&out)), nil
}

// Encode renders req in OpenAI's wire format. Fields of an OpenAI-format
// request with no canonical meaning are passed through.
func (c *Connector) Encode(model string, req *canon.Request) (map[string]any, error) {
	if err := canon.CheckPortable(req, canon.FamilyOpenAI); err != nil {
		return nil, err
	}
	m := map[string]any{}
	if req.Family == canon.FamilyOpenAI {
		for k, v := range req.Extra {
			m[k] = v
		}
	}
	msgs, err := openAIMessages(req)
	if err != nil {
		return nil, err
	}
	m["model"] = model
	m["messages"] = msgs
	if len(req.Tools) > 0 {
		tools := make([]map[string]any, len(req.Tools))
		for i, t := range req.Tools {
			params := t.Parameters
			if len(params) == 0 {
				params = json.RawMessage(`{"type":"object","properties":{}}`)
			}
			fn := map[string]any{"name": t.Name, "parameters": params}
			if t.Description != "" {
				fn["description"] = t.Description
			}
			if t.Strict != nil {
				fn["strict"] = *t.Strict
			}
			tools[i] = map[string]any{"type": "function", "function": fn}
		}
		m["tools"] = tools
		if req.ParallelToolCalls != nil {
			m["parallel_tool_calls"] = *req.ParallelToolCalls
		}
	}
	if tc := req.ToolChoice; tc != nil {
		switch tc.Mode {
		case canon.ToolNamed:
			m["tool_choice"] = map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}}
		default:
			m["tool_choice"] = tc.Mode
		}
	}
	if req.MaxTokens > 0 {
		if c.compatible {
			m["max_tokens"] = req.MaxTokens
		} else {
			m["max_completion_tokens"] = req.MaxTokens
			delete(m, "max_tokens")
		}
	}
	canon.SetOpt(m, "temperature", req.Temperature)
	canon.SetOpt(m, "top_p", req.TopP)
	canon.SetOpt(m, "seed", req.Seed)
	canon.SetOpt(m, "presence_penalty", req.PresencePenalty)
	canon.SetOpt(m, "frequency_penalty", req.FrequencyPenalty)
	if c.compatible {
		canon.SetOpt(m, "top_k", req.TopK)
	}
	if len(req.Stop) > 0 {
		m["stop"] = req.Stop
	}
	if len(req.ResponseFormat) > 0 {
		m["response_format"] = req.ResponseFormat
	}
	if req.Stream {
		m["stream"] = true
		// Forced so usage is always known, whatever the caller asked.
		m["stream_options"] = map[string]bool{"include_usage": true}
	} else {
		delete(m, "stream")
		delete(m, "stream_options")
	}
	return m, nil
}

func openAIMessages(req *canon.Request) ([]oaMessage, error) {
	var out []oaMessage
	if sys := req.SystemText(); sys != "" {
		out = append(out, oaMessage{Role: "system", Content: jsonString(sys)})
	}
	for _, msg := range req.Messages {
		switch msg.Role {
		case canon.RoleAssistant:
			var text strings.Builder
			om := oaMessage{Role: "assistant"}
			for _, p := range msg.Parts {
				switch p.Type {
				case canon.PartText:
					text.WriteString(p.Text)
				case canon.PartToolCall:
					args := p.Args
					if strings.TrimSpace(args) == "" {
						args = "{}"
					}
					om.ToolCalls = append(om.ToolCalls, oaToolCall{ID: p.ToolID, Type: "function", Function: oaFunction{Name: p.ToolName, Arguments: args}})
				}
			}
			if text.Len() > 0 || len(om.ToolCalls) == 0 {
				om.Content = jsonString(text.String())
			} else {
				om.Content = json.RawMessage("null")
			}
			out = append(out, om)
		default:
			var parts []oaContentPart
			for _, p := range msg.Parts {
				switch p.Type {
				case canon.PartToolResult:
					out = append(out, oaMessage{Role: "tool", ToolCallID: p.ToolID, Content: jsonString(p.Text)})
				case canon.PartText:
					parts = append(parts, oaContentPart{Type: "text", Text: p.Text})
				case canon.PartImage:
					u := p.URL
					if u == "" {
						u = "data:" + p.MediaType + ";base64," + p.Data
					}
					cp := oaContentPart{Type: "image_url"}
					cp.ImageURL = &struct {
						URL    string `json:"url"`
						Detail string `json:"detail,omitempty"`
					}{URL: u}
					parts = append(parts, cp)
				}
			}
			switch {
			case len(parts) == 0:
			case len(parts) == 1 && parts[0].Type == "text":
				out = append(out, oaMessage{Role: "user", Content: jsonString(parts[0].Text)})
			default:
				b, err := json.Marshal(parts)
				if err != nil {
					return nil, err
				}
				out = append(out, oaMessage{Role: "user", Content: b})
			}
		}
	}
	return out, nil
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// openAIEvents turns a complete chat.completion into events.
func openAIEvents(r *oaResponse) []canon.Event {
	evs := []canon.Event{{Kind: canon.EvStart, ID: r.ID, Model: r.Model}}
	finish := "stop"
	if len(r.Choices) > 0 {
		ch := r.Choices[0]
		if ch.Message.Content != nil && *ch.Message.Content != "" {
			evs = append(evs, canon.Event{Kind: canon.EvText, Text: *ch.Message.Content})
		}
		if ch.Message.Refusal != nil && *ch.Message.Refusal != "" {
			evs = append(evs, canon.Event{Kind: canon.EvText, Text: *ch.Message.Refusal})
		}
		for i, tc := range ch.Message.ToolCalls {
			evs = append(evs,
				canon.Event{Kind: canon.EvToolStart, Index: i, ToolID: tc.ID, ToolName: tc.Function.Name},
				canon.Event{Kind: canon.EvToolArgs, Index: i, Text: tc.Function.Arguments},
				canon.Event{Kind: canon.EvToolEnd, Index: i})
		}
		if ch.FinishReason != "" {
			finish = ch.FinishReason
		}
	}
	evs = append(evs, canon.Event{Kind: canon.EvFinish, Finish: openAIFinish(finish), Native: finish, NativeFamily: canon.FamilyOpenAI})
	if r.Usage != nil {
		evs = append(evs, canon.Event{Kind: canon.EvUsage, Usage: r.Usage.canonical()})
	}
	return evs
}

var doneMarker = []byte("[DONE]")

// stream reads chat.completion.chunk events until data: [DONE].
func (c *Connector) stream(ctx context.Context, resp *http.Response) canon.Stream {
	sse := canon.NewSSEReader(resp.Body)
	started, finished := false, false
	open := map[int]bool{}
	var order []int
	q := &canon.QueueStream{Body: resp.Body, SSE: sse}
	q.Fill = func() ([]canon.Event, error) {
		ev, err := sse.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if finished {
					return nil, io.EOF
				}
				return nil, &canon.UpstreamError{Provider: c.p.Name, Message: "upstream closed the stream early"}
			}
			return nil, c.p.ReadStreamErr(ctx, err)
		}
		data := bytes.TrimSpace(ev.Data)
		if bytes.Equal(data, doneMarker) {
			if !finished {
				return nil, &canon.UpstreamError{Provider: c.p.Name, Message: "upstream ended the stream without a finish reason"}
			}
			return nil, io.EOF
		}
		if len(data) == 0 {
			return nil, nil
		}
		var ch oaChunk
		if err := json.Unmarshal(data, &ch); err != nil {
			return nil, &canon.UpstreamError{Provider: c.p.Name, Status: http.StatusBadGateway, Message: "invalid stream chunk: " + canon.Truncate(c.p.Scrub(err.Error()), 200)}
		}
		if len(ch.Error) > 0 && string(ch.Error) != "null" {
			typ, msg := canon.ParseErrorBody(append(append([]byte(`{"error":`), ch.Error...), '}'))
			return nil, &canon.UpstreamError{Provider: c.p.Name, Status: http.StatusBadGateway, Type: typ, Message: canon.Truncate(c.p.Scrub(msg), 500)}
		}
		var evs []canon.Event
		if !started {
			started = true
			evs = append(evs, canon.Event{Kind: canon.EvStart, ID: ch.ID, Model: ch.Model})
		}
		if len(ch.Choices) > 0 {
			d := ch.Choices[0].Delta
			if d.Content != nil && *d.Content != "" {
				evs = append(evs, canon.Event{Kind: canon.EvText, Text: *d.Content})
			}
			if d.Refusal != nil && *d.Refusal != "" {
				evs = append(evs, canon.Event{Kind: canon.EvText, Text: *d.Refusal})
			}
			for j, tc := range d.ToolCalls {
				idx := j
				if tc.Index != nil {
					idx = *tc.Index
				}
				if !open[idx] {
					open[idx] = true
					order = append(order, idx)
					evs = append(evs, canon.Event{Kind: canon.EvToolStart, Index: idx, ToolID: tc.ID, ToolName: tc.Function.Name})
				}
				if tc.Function.Arguments != "" {
					evs = append(evs, canon.Event{Kind: canon.EvToolArgs, Index: idx, Text: tc.Function.Arguments})
				}
			}
			if fr := ch.Choices[0].FinishReason; fr != nil && *fr != "" && !finished {
				finished = true
				for _, idx := range order {
					evs = append(evs, canon.Event{Kind: canon.EvToolEnd, Index: idx})
				}
				evs = append(evs, canon.Event{Kind: canon.EvFinish, Finish: openAIFinish(*fr), Native: *fr, NativeFamily: canon.FamilyOpenAI})
			}
		}
		if ch.Usage != nil {
			evs = append(evs, canon.Event{Kind: canon.EvUsage, Usage: ch.Usage.canonical()})
		}
		return evs, nil
	}
	return q
}

func (c *Connector) Embed(ctx context.Context, model string, req *canon.EmbedRequest) (*canon.EmbedResponse, error) {
	m := map[string]any{}
	for k, v := range req.Extra {
		m[k] = v
	}
	m["model"] = model
	m["input"] = req.Input
	m["encoding_format"] = "float"
	canon.SetOpt(m, "dimensions", req.Dimensions)
	resp, err := c.p.Post(ctx, c.p.BaseURL+"/embeddings", m, c.auth)
	if err != nil {
		return nil, err
	}
	var out struct {
		Model string `json:"model"`
		Data  []struct {
			Index     int       `json:"index"`
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
		Usage *oaUsage `json:"usage"`
	}
	if err := c.p.DecodeBody(ctx, resp, &out); err != nil {
		return nil, err
	}
	if len(out.Data) != len(req.Input) {
		return nil, &canon.UpstreamError{Provider: c.p.Name, Status: http.StatusBadGateway, Message: "upstream returned a different number of embeddings than inputs"}
	}
	res := &canon.EmbedResponse{Model: out.Model, Vectors: make([][]float64, len(out.Data))}
	for i, d := range out.Data {
		if d.Index < 0 || d.Index >= len(res.Vectors) {
			return nil, &canon.UpstreamError{Provider: c.p.Name, Status: http.StatusBadGateway, Message: "upstream embedding index out of range"}
		}
		if d.Index == 0 && i != 0 && res.Vectors[0] != nil {
			d.Index = i
		}
		res.Vectors[d.Index] = d.Embedding
	}
	if out.Usage != nil {
		res.Usage = canon.Usage{InputTokens: out.Usage.PromptTokens}
	}
	return res, nil
}
