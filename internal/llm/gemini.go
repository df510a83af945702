package llm

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// Google Gemini generateContent / streamGenerateContent wire types.

type gmPart struct {
	Text             string          `json:"text,omitempty"`
	Thought          bool            `json:"thought,omitempty"`
	ThoughtSignature string          `json:"thoughtSignature,omitempty"`
	InlineData       *gmBlob         `json:"inlineData,omitempty"`
	FileData         *gmFile         `json:"fileData,omitempty"`
	FunctionCall     *gmFunctionCall `json:"functionCall,omitempty"`
	FunctionResponse *gmFunctionResp `json:"functionResponse,omitempty"`
}

type gmBlob struct {
	MimeType string `json:"mimeType"`
	Data     string `json:"data"`
}

type gmFile struct {
	MimeType string `json:"mimeType,omitempty"`
	FileURI  string `json:"fileUri"`
}

type gmFunctionCall struct {
	ID   string          `json:"id,omitempty"`
	Name string          `json:"name"`
	Args json.RawMessage `json:"args,omitempty"`
}

type gmFunctionResp struct {
	Name     string          `json:"name"`
	Response json.RawMessage `json:"response"`
}

type gmContent struct {
	Role  string   `json:"role,omitempty"`
	Parts []gmPart `json:"parts"`
}

type gmResponse struct {
	Candidates []struct {
		Content      gmContent `json:"content"`
		FinishReason string    `json:"finishReason"`
	} `json:"candidates"`
	PromptFeedback *struct {
		BlockReason string `json:"blockReason"`
	} `json:"promptFeedback"`
	UsageMetadata *struct {
		PromptTokenCount        int64 `json:"promptTokenCount"`
		CandidatesTokenCount    int64 `json:"candidatesTokenCount"`
		CachedContentTokenCount int64 `json:"cachedContentTokenCount"`
		ThoughtsTokenCount      int64 `json:"thoughtsTokenCount"`
		ToolUsePromptTokenCount int64 `json:"toolUsePromptTokenCount"`
	} `json:"usageMetadata"`
	ModelVersion string          `json:"modelVersion"`
	ResponseID   string          `json:"responseId"`
	Error        json.RawMessage `json:"error"`
}

func (r *gmResponse) usage() (Usage, bool) {
	u := r.UsageMetadata
	if u == nil {
		return Usage{}, false
	}
	return Usage{
		InputTokens:     u.PromptTokenCount + u.ToolUsePromptTokenCount,
		OutputTokens:    u.CandidatesTokenCount + u.ThoughtsTokenCount,
		CacheReadTokens: u.CachedContentTokenCount,
	}, true
}

// geminiFinish maps Gemini's finish reasons. Safety-class reasons become
// content_filter and a malformed or unexpected tool call becomes
// malformed_function_call; the native word is always kept beside it.
func geminiFinish(s string, calledTool bool) FinishReason {
	switch s {
	case "STOP", "":
		if calledTool {
			return FinishToolCalls
		}
		return FinishStop
	case "MAX_TOKENS":
		return FinishLength
	case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE":
		return FinishContentFilter
	case "MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL":
		return FinishMalformedCall
	}
	return FinishOther
}

type geminiConnector struct {
	p *provider
	// sigs remembers the thought signatures Gemini attaches to function
	// calls, by tool call ID, so they can be sent back with the call in the
	// next turn even when the caller speaks a format without them.
	mu   sync.Mutex
	sigs map[string]string
}

var _ Connector = (*geminiConnector)(nil)

const maxSignatures = 10000

func (c *geminiConnector) remember(id, sig string) {
	if sig == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sigs == nil || len(c.sigs) >= maxSignatures {
		c.sigs = map[string]string{}
	}
	c.sigs[id] = sig
}

func (c *geminiConnector) signature(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sigs[id]
}

func (c *geminiConnector) auth(h http.Header) { h.Set("x-goog-api-key", c.p.key.reveal()) }

func (c *geminiConnector) modelURL(model, method string) string {
	model = strings.TrimPrefix(model, "models/")
	return c.p.baseURL + "/models/" + url.PathEscape(model) + ":" + method
}

func (c *geminiConnector) Chat(ctx context.Context, model string, req *Request) (Stream, error) {
	body, err := c.encode(req)
	if err != nil {
		return nil, err
	}
	method := "generateContent"
	if req.Stream {
		method = "streamGenerateContent?alt=sse"
	}
	resp, err := c.p.post(ctx, c.modelURL(model, method), body, c.auth)
	if err != nil {
		return nil, err
	}
	st := &gmState{c: c, model: model}
	if req.Stream {
		return c.stream(ctx, resp, st), nil
	}
	var out gmResponse
	if err := c.p.decodeBody(ctx, resp, &out); err != nil {
		return nil, err
	}
	evs, err := st.events(&out)
	if err != nil {
		return nil, err
	}
	return sliceStream(append(evs, st.end()...)), nil
}

// encode renders req as a generateContent request: the system prompt in
// systemInstruction, assistant turns as role model, tool calls as
// functionCall parts with object args, tool results as functionResponse
// parts named after the call they answer.
func (c *geminiConnector) encode(req *Request) (map[string]any, error) {
	if err := checkPortable(req, FamilyGemini); err != nil {
		return nil, err
	}
	m := map[string]any{}
	if sys := req.SystemText(); sys != "" {
		m["systemInstruction"] = gmContent{Parts: []gmPart{{Text: sys}}}
	}
	var contents []gmContent
	for _, msg := range req.Messages {
		role := "user"
		if msg.Role == RoleAssistant {
			role = "model"
		}
		var parts []gmPart
		for _, p := range msg.Parts {
			switch p.Type {
			case PartText:
				if p.Text != "" {
					parts = append(parts, gmPart{Text: p.Text})
				}
			case PartImage:
				if p.URL != "" {
					parts = append(parts, gmPart{FileData: &gmFile{FileURI: p.URL, MimeType: mimeFromURL(p.URL)}})
				} else {
					parts = append(parts, gmPart{InlineData: &gmBlob{MimeType: p.MediaType, Data: p.Data}})
				}
			case PartToolCall:
				args, err := objectArgs(p.Args)
				if err != nil {
					return nil, badRequest("tool call %s: %v", p.ToolID, err)
				}
				parts = append(parts, gmPart{FunctionCall: &gmFunctionCall{Name: p.ToolName, Args: args}, ThoughtSignature: c.signature(p.ToolID)})
			case PartToolResult:
				if p.ToolName == "" {
					return nil, badRequest("tool result %s does not answer a tool call earlier in the conversation; Gemini needs the function name", p.ToolID)
				}
				key := "output"
				if p.IsError {
					key = "error"
				}
				var resp json.RawMessage
				var obj map[string]json.RawMessage
				if json.Unmarshal([]byte(p.Text), &obj) == nil && obj != nil && !p.IsError {
					resp = json.RawMessage(p.Text)
				} else {
					resp, _ = json.Marshal(map[string]string{key: p.Text})
				}
				parts = append(parts, gmPart{FunctionResponse: &gmFunctionResp{Name: p.ToolName, Response: resp}})
			}
		}
		if len(parts) == 0 {
			continue
		}
		if n := len(contents); n > 0 && contents[n-1].Role == role {
			contents[n-1].Parts = append(contents[n-1].Parts, parts...)
		} else {
			contents = append(contents, gmContent{Role: role, Parts: parts})
		}
	}
	m["contents"] = contents
	if len(req.Tools) > 0 {
		decls := make([]map[string]any, len(req.Tools))
		for i, t := range req.Tools {
			d := map[string]any{"name": t.Name}
			if t.Description != "" {
				d["description"] = t.Description
			}
			if len(t.Parameters) > 0 {
				d["parameters"] = geminiSchema(t.Parameters)
			}
			decls[i] = d
		}
		m["tools"] = []map[string]any{{"functionDeclarations": decls}}
	}
	if tc := req.ToolChoice; tc != nil && len(req.Tools) > 0 {
		fc := map[string]any{}
		switch tc.Mode {
		case ToolAuto:
			fc["mode"] = "AUTO"
		case ToolNone:
			fc["mode"] = "NONE"
		case ToolRequired:
			fc["mode"] = "ANY"
		case ToolNamed:
			fc["mode"] = "ANY"
			fc["allowedFunctionNames"] = []string{tc.Name}
		}
		m["toolConfig"] = map[string]any{"functionCallingConfig": fc}
	}
	gc := map[string]any{}
	if req.MaxTokens > 0 {
		gc["maxOutputTokens"] = req.MaxTokens
	}
	setOpt(gc, "temperature", req.Temperature)
	setOpt(gc, "topP", req.TopP)
	setOpt(gc, "topK", req.TopK)
	setOpt(gc, "seed", req.Seed)
	setOpt(gc, "presencePenalty", req.PresencePenalty)
	setOpt(gc, "frequencyPenalty", req.FrequencyPenalty)
	if len(req.Stop) > 0 {
		gc["stopSequences"] = req.Stop
	}
	if len(req.ResponseFormat) > 0 {
		var rf struct {
			Type       string `json:"type"`
			JSONSchema *struct {
				Schema json.RawMessage `json:"schema"`
			} `json:"json_schema"`
		}
		if json.Unmarshal(req.ResponseFormat, &rf) == nil {
			switch rf.Type {
			case "json_object":
				gc["responseMimeType"] = "application/json"
			case "json_schema":
				gc["responseMimeType"] = "application/json"
				if rf.JSONSchema != nil && len(rf.JSONSchema.Schema) > 0 {
					gc["responseJsonSchema"] = rf.JSONSchema.Schema
				}
			}
		}
	}
	if len(gc) > 0 {
		m["generationConfig"] = gc
	}
	return m, nil
}

// geminiSchema drops the JSON Schema keywords Gemini's OpenAPI-subset
// parameters refuse ($schema, additionalProperties).
func geminiSchema(raw json.RawMessage) any {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return raw
	}
	var walk func(any) any
	walk = func(v any) any {
		switch t := v.(type) {
		case map[string]any:
			delete(t, "$schema")
			delete(t, "additionalProperties")
			for k, x := range t {
				t[k] = walk(x)
			}
			return t
		case []any:
			for i, x := range t {
				t[i] = walk(x)
			}
			return t
		}
		return v
	}
	return walk(v)
}

func mimeFromURL(u string) string {
	switch l := strings.ToLower(u); {
	case strings.HasSuffix(l, ".png"):
		return "image/png"
	case strings.HasSuffix(l, ".gif"):
		return "image/gif"
	case strings.HasSuffix(l, ".webp"):
		return "image/webp"
	}
	return "image/jpeg"
}

// gmState turns a sequence of GenerateContentResponse objects (one for a
// plain call, many for a stream) into events.
type gmState struct {
	c        *geminiConnector
	model    string
	started  bool
	tools    int
	finished bool
	usage    Usage
}

func (s *gmState) events(r *gmResponse) ([]Event, error) {
	if len(r.Error) > 0 && string(r.Error) != "null" {
		typ, msg := parseErrorBody(append(append([]byte(`{"error":`), r.Error...), '}'))
		return nil, &UpstreamError{Provider: s.c.p.name, Status: http.StatusBadGateway, Type: typ, Message: truncate(s.c.p.scrub(msg), 500)}
	}
	var evs []Event
	if !s.started {
		s.started = true
		id := r.ResponseID
		if id == "" {
			id = newID("gemini-")
		}
		model := r.ModelVersion
		if model == "" {
			model = s.model
		}
		evs = append(evs, Event{Kind: EvStart, ID: id, Model: model})
	}
	if u, ok := r.usage(); ok {
		s.usage = u
	}
	if len(r.Candidates) == 0 {
		if r.PromptFeedback != nil && r.PromptFeedback.BlockReason != "" && !s.finished {
			s.finished = true
			evs = append(evs, Event{Kind: EvFinish, Finish: FinishContentFilter, Native: "PROMPT_BLOCKED_" + r.PromptFeedback.BlockReason, NativeFamily: FamilyGemini})
		}
		return evs, nil
	}
	cand := r.Candidates[0]
	for _, p := range cand.Content.Parts {
		switch {
		case p.FunctionCall != nil:
			id := p.FunctionCall.ID
			if id == "" {
				id = newID("call_")
			}
			s.c.remember(id, p.ThoughtSignature)
			args := string(p.FunctionCall.Args)
			if strings.TrimSpace(args) == "" || args == "null" {
				args = "{}"
			}
			evs = append(evs,
				Event{Kind: EvToolStart, Index: s.tools, ToolID: id, ToolName: p.FunctionCall.Name},
				Event{Kind: EvToolArgs, Index: s.tools, Text: args},
				Event{Kind: EvToolEnd, Index: s.tools})
			s.tools++
		case p.Thought:
		case p.Text != "":
			evs = append(evs, Event{Kind: EvText, Text: p.Text})
		}
	}
	if cand.FinishReason != "" && !s.finished {
		s.finished = true
		evs = append(evs, Event{Kind: EvFinish, Finish: geminiFinish(cand.FinishReason, s.tools > 0), Native: cand.FinishReason, NativeFamily: FamilyGemini})
	}
	return evs, nil
}

// end closes the answer: a finish if the upstream gave none, then usage.
func (s *gmState) end() []Event {
	var evs []Event
	if !s.finished {
		s.finished = true
		evs = append(evs, Event{Kind: EvFinish, Finish: geminiFinish("", s.tools > 0), NativeFamily: FamilyGemini})
	}
	return append(evs, Event{Kind: EvUsage, Usage: s.usage})
}

// stream reads streamGenerateContent?alt=sse: each event is a whole
// GenerateContentResponse carrying the next parts; the stream ends when the
// server closes it.
func (c *geminiConnector) stream(ctx context.Context, resp *http.Response, st *gmState) Stream {
	sse := newSSEReader(resp.Body)
	ended := false
	q := &queueStream{body: resp.Body, sse: sse}
	q.fill = func() ([]Event, error) {
		if ended {
			return nil, io.EOF
		}
		ev, err := sse.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if !st.finished {
					return nil, &UpstreamError{Provider: c.p.name, Message: "upstream closed the stream early"}
				}
				ended = true
				return st.end(), nil
			}
			return nil, c.p.readStreamErr(ctx, err)
		}
		var r gmResponse
		if err := json.Unmarshal(ev.Data, &r); err != nil {
			return nil, &UpstreamError{Provider: c.p.name, Status: http.StatusBadGateway, Message: "invalid stream chunk: " + truncate(c.p.scrub(err.Error()), 200)}
		}
		return st.events(&r)
	}
	return q
}

func (c *geminiConnector) Embed(ctx context.Context, model string, req *EmbedRequest) (*EmbedResponse, error) {
	model = strings.TrimPrefix(model, "models/")
	reqs := make([]map[string]any, len(req.Input))
	for i, in := range req.Input {
		r := map[string]any{"model": "models/" + model, "content": gmContent{Parts: []gmPart{{Text: in}}}}
		if req.Dimensions != nil {
			r["outputDimensionality"] = *req.Dimensions
		}
		reqs[i] = r
	}
	resp, err := c.p.post(ctx, c.modelURL(model, "batchEmbedContents"), map[string]any{"requests": reqs}, c.auth)
	if err != nil {
		return nil, err
	}
	var out struct {
		Embeddings []struct {
			Values []float64 `json:"values"`
		} `json:"embeddings"`
	}
	if err := c.p.decodeBody(ctx, resp, &out); err != nil {
		return nil, err
	}
	if len(out.Embeddings) != len(req.Input) {
		return nil, &UpstreamError{Provider: c.p.name, Status: http.StatusBadGateway, Message: "upstream returned a different number of embeddings than inputs"}
	}
	res := &EmbedResponse{Model: model, Vectors: make([][]float64, len(out.Embeddings))}
	for i, e := range out.Embeddings {
		res.Vectors[i] = e.Values
	}
	return res, nil
}
