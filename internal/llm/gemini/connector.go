package gemini

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/cortexrt/cortex/internal/llm/canon"
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

func (r *gmResponse) usage() (canon.Usage, bool) {
	u := r.UsageMetadata
	if u == nil {
		return canon.Usage{}, false
	}
	return canon.Usage{
		InputTokens:     u.PromptTokenCount + u.ToolUsePromptTokenCount,
		OutputTokens:    u.CandidatesTokenCount + u.ThoughtsTokenCount,
		CacheReadTokens: u.CachedContentTokenCount,
	}, true
}

// geminiFinish maps Gemini's finish reasons. Safety-class reasons become
// content_filter and a malformed or unexpected tool call becomes
// malformed_function_call; the native word is always kept beside it.
func geminiFinish(s string, calledTool bool) canon.FinishReason {
	switch s {
	case "STOP", "":
		if calledTool {
			return canon.FinishToolCalls
		}
		return canon.FinishStop
	case "MAX_TOKENS":
		return canon.FinishLength
	case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE":
		return canon.FinishContentFilter
	case "MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL":
		return canon.FinishMalformedCall
	}
	return canon.FinishOther
}

// Connector serves kind gemini (the Generative Language API).
type Connector struct {
	p *canon.Provider
	// sigs remembers the thought signatures Gemini attaches to function
	// calls, by tool call ID, so they can be sent back with the call in the
	// next turn even when the caller speaks a format without them.
	mu   sync.Mutex
	sigs map[string]string
}

var _ canon.Connector = (*Connector)(nil)

// New returns the connector of p.
func New(p *canon.Provider) *Connector { return &Connector{p: p} }

const maxSignatures = 10000

func (c *Connector) remember(id, sig string) {
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

func (c *Connector) signature(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sigs[id]
}

func (c *Connector) auth(h http.Header) { h.Set("x-goog-api-key", c.p.Key.Reveal()) }

func (c *Connector) modelURL(model, method string) string {
	model = strings.TrimPrefix(model, "models/")
	return c.p.BaseURL + "/models/" + url.PathEscape(model) + ":" + method
}

func (c *Connector) Chat(ctx context.Context, model string, req *canon.Request) (canon.Stream, error) {
	body, err := c.Encode(req)
	if err != nil {
		return nil, err
	}
	method := "generateContent"
	if req.Stream {
		method = "streamGenerateContent?alt=sse"
	}
	resp, err := c.p.Post(ctx, c.modelURL(model, method), body, c.auth)
	if err != nil {
		return nil, err
	}
	st := &gmState{c: c, model: model}
	if req.Stream {
		return c.stream(ctx, resp, st), nil
	}
	var out gmResponse
	if err := c.p.DecodeBody(ctx, resp, &out); err != nil {
		return nil, err
	}
	evs, err := st.events(&out)
	if err != nil {
		return nil, err
	}
	return canon.SliceStream(append(evs, st.end()...)), nil
}

// Encode renders req as a generateContent request: the system prompt in
// systemInstruction, assistant turns as role model, tool calls as
// functionCall parts with object args, tool results as functionResponse
// parts named after the call they answer.
func (c *Connector) Encode(req *canon.Request) (map[string]any, error) {
	if err := canon.CheckPortable(req, canon.FamilyGemini); err != nil {
		return nil, err
	}
	m := map[string]any{}
	if sys := req.SystemText(); sys != "" {
		m["systemInstruction"] = gmContent{Parts: []gmPart{{Text: sys}}}
	}
	contents, err := c.encodeContents(req.Messages)
	if err != nil {
		return nil, err
	}
	m["contents"] = contents
	if len(req.Tools) > 0 {
		m["tools"] = encodeTools(req.Tools)
		if tc := req.ToolChoice; tc != nil {
			m["toolConfig"] = map[string]any{"functionCallingConfig": encodeToolChoice(tc)}
		}
	}
	if gc := generationConfig(req); len(gc) > 0 {
		m["generationConfig"] = gc
	}
	return m, nil
}

// encodeContents turns the conversation into contents of roles user and
// model, consecutive messages of one role merged.
func (c *Connector) encodeContents(messages []canon.Message) ([]gmContent, error) {
	var contents []gmContent
	for _, msg := range messages {
		role := "user"
		if msg.Role == canon.RoleAssistant {
			role = "model"
		}
		var parts []gmPart
		for _, p := range msg.Parts {
			gp, ok, err := c.encodePart(p)
			if err != nil {
				return nil, err
			}
			if ok {
				parts = append(parts, gp)
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
	return contents, nil
}

// encodePart is part p as a Gemini part; ok is false for a part Gemini
// does not take (empty text, a native block of another family). A function
// call carries back the thought signature Gemini gave it.
func (c *Connector) encodePart(p canon.Part) (gp gmPart, ok bool, err error) {
	switch p.Type {
	case canon.PartText:
		return gmPart{Text: p.Text}, p.Text != "", nil
	case canon.PartImage:
		if p.URL != "" {
			return gmPart{FileData: &gmFile{FileURI: p.URL, MimeType: mimeFromURL(p.URL)}}, true, nil
		}
		return gmPart{InlineData: &gmBlob{MimeType: p.MediaType, Data: p.Data}}, true, nil
	case canon.PartToolCall:
		args, err := canon.ObjectArgs(p.Args)
		if err != nil {
			return gmPart{}, false, canon.BadRequest("tool call %s: %v", p.ToolID, err)
		}
		return gmPart{FunctionCall: &gmFunctionCall{Name: p.ToolName, Args: args}, ThoughtSignature: c.signature(p.ToolID)}, true, nil
	case canon.PartToolResult:
		if p.ToolName == "" {
			return gmPart{}, false, canon.BadRequest("tool result %s does not answer a tool call earlier in the conversation; Gemini needs the function name", p.ToolID)
		}
		return gmPart{FunctionResponse: &gmFunctionResp{Name: p.ToolName, Response: functionResponse(p)}}, true, nil
	}
	return gmPart{}, false, nil
}

// functionResponse is a tool result as Gemini's response object: a JSON
// object result as it is, anything else under "output" (or "error").
func functionResponse(p canon.Part) json.RawMessage {
	var obj map[string]json.RawMessage
	if json.Unmarshal([]byte(p.Text), &obj) == nil && obj != nil && !p.IsError {
		return json.RawMessage(p.Text)
	}
	key := "output"
	if p.IsError {
		key = "error"
	}
	resp, _ := json.Marshal(map[string]string{key: p.Text})
	return resp
}

// encodeTools is the tools list: one entry of function declarations.
func encodeTools(ts []canon.Tool) []map[string]any {
	decls := make([]map[string]any, len(ts))
	for i, t := range ts {
		d := map[string]any{"name": t.Name}
		if t.Description != "" {
			d["description"] = t.Description
		}
		if len(t.Parameters) > 0 {
			d["parameters"] = geminiSchema(t.Parameters)
		}
		decls[i] = d
	}
	return []map[string]any{{"functionDeclarations": decls}}
}

// encodeToolChoice is the functionCallingConfig of tc.
func encodeToolChoice(tc *canon.ToolChoice) map[string]any {
	fc := map[string]any{}
	switch tc.Mode {
	case canon.ToolAuto:
		fc["mode"] = "AUTO"
	case canon.ToolNone:
		fc["mode"] = "NONE"
	case canon.ToolRequired:
		fc["mode"] = "ANY"
	case canon.ToolNamed:
		fc["mode"] = "ANY"
		fc["allowedFunctionNames"] = []string{tc.Name}
	}
	return fc
}

// generationConfig holds the sampling options, the stop sequences and a
// JSON response format.
func generationConfig(req *canon.Request) map[string]any {
	gc := map[string]any{}
	if req.MaxTokens > 0 {
		gc["maxOutputTokens"] = req.MaxTokens
	}
	canon.SetOpt(gc, "temperature", req.Temperature)
	canon.SetOpt(gc, "topP", req.TopP)
	canon.SetOpt(gc, "topK", req.TopK)
	canon.SetOpt(gc, "seed", req.Seed)
	canon.SetOpt(gc, "presencePenalty", req.PresencePenalty)
	canon.SetOpt(gc, "frequencyPenalty", req.FrequencyPenalty)
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
	return gc
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
	c        *Connector
	model    string
	started  bool
	tools    int
	finished bool
	usage    canon.Usage
}

func (s *gmState) events(r *gmResponse) ([]canon.Event, error) {
	if len(r.Error) > 0 && string(r.Error) != "null" {
		typ, msg := canon.ParseErrorBody(append(append([]byte(`{"error":`), r.Error...), '}'))
		return nil, &canon.UpstreamError{Provider: s.c.p.Name, Status: http.StatusBadGateway, Type: typ, Message: canon.Truncate(s.c.p.Scrub(msg), 500)}
	}
	var evs []canon.Event
	if !s.started {
		s.started = true
		id := r.ResponseID
		if id == "" {
			id = canon.NewID("gemini-")
		}
		model := r.ModelVersion
		if model == "" {
			model = s.model
		}
		evs = append(evs, canon.Event{Kind: canon.EvStart, ID: id, Model: model})
	}
	if u, ok := r.usage(); ok {
		s.usage = u
	}
	if len(r.Candidates) == 0 {
		if r.PromptFeedback != nil && r.PromptFeedback.BlockReason != "" && !s.finished {
			s.finished = true
			evs = append(evs, canon.Event{Kind: canon.EvFinish, Finish: canon.FinishContentFilter, Native: "PROMPT_BLOCKED_" + r.PromptFeedback.BlockReason, NativeFamily: canon.FamilyGemini})
		}
		return evs, nil
	}
	cand := r.Candidates[0]
	for _, p := range cand.Content.Parts {
		switch {
		case p.FunctionCall != nil:
			id := p.FunctionCall.ID
			if id == "" {
				id = canon.NewID("call_")
			}
			s.c.remember(id, p.ThoughtSignature)
			args := string(p.FunctionCall.Args)
			if strings.TrimSpace(args) == "" || args == "null" {
				args = "{}"
			}
			evs = append(evs,
				canon.Event{Kind: canon.EvToolStart, Index: s.tools, ToolID: id, ToolName: p.FunctionCall.Name},
				canon.Event{Kind: canon.EvToolArgs, Index: s.tools, Text: args},
				canon.Event{Kind: canon.EvToolEnd, Index: s.tools})
			s.tools++
		case p.Thought:
		case p.Text != "":
			evs = append(evs, canon.Event{Kind: canon.EvText, Text: p.Text})
		}
	}
	if cand.FinishReason != "" && !s.finished {
		s.finished = true
		evs = append(evs, canon.Event{Kind: canon.EvFinish, Finish: geminiFinish(cand.FinishReason, s.tools > 0), Native: cand.FinishReason, NativeFamily: canon.FamilyGemini})
	}
	return evs, nil
}

// end closes the answer: a finish if the upstream gave none, then usage.
func (s *gmState) end() []canon.Event {
	var evs []canon.Event
	if !s.finished {
		s.finished = true
		evs = append(evs, canon.Event{Kind: canon.EvFinish, Finish: geminiFinish("", s.tools > 0), NativeFamily: canon.FamilyGemini})
	}
	return append(evs, canon.Event{Kind: canon.EvUsage, Usage: s.usage})
}

// stream reads streamGenerateContent?alt=sse: each event is a whole
// GenerateContentResponse carrying the next parts; the stream ends when the
// server closes it.
func (c *Connector) stream(ctx context.Context, resp *http.Response, st *gmState) canon.Stream {
	sse := canon.NewSSEReader(resp.Body)
	ended := false
	q := &canon.QueueStream{Body: resp.Body, SSE: sse}
	q.Fill = func() ([]canon.Event, error) {
		if ended {
			return nil, io.EOF
		}
		ev, err := sse.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if !st.finished {
					return nil, &canon.UpstreamError{Provider: c.p.Name, Message: "upstream closed the stream early"}
				}
				ended = true
				return st.end(), nil
			}
			return nil, c.p.ReadStreamErr(ctx, err)
		}
		var r gmResponse
		if err := json.Unmarshal(ev.Data, &r); err != nil {
			return nil, &canon.UpstreamError{Provider: c.p.Name, Status: http.StatusBadGateway, Message: "invalid stream chunk: " + canon.Truncate(c.p.Scrub(err.Error()), 200)}
		}
		return st.events(&r)
	}
	return q
}

func (c *Connector) Embed(ctx context.Context, model string, req *canon.EmbedRequest) (*canon.EmbedResponse, error) {
	model = strings.TrimPrefix(model, "models/")
	reqs := make([]map[string]any, len(req.Input))
	for i, in := range req.Input {
		r := map[string]any{"model": "models/" + model, "content": gmContent{Parts: []gmPart{{Text: in}}}}
		if req.Dimensions != nil {
			r["outputDimensionality"] = *req.Dimensions
		}
		reqs[i] = r
	}
	resp, err := c.p.Post(ctx, c.modelURL(model, "batchEmbedContents"), map[string]any{"requests": reqs}, c.auth)
	if err != nil {
		return nil, err
	}
	var out struct {
		Embeddings []struct {
			Values []float64 `json:"values"`
		} `json:"embeddings"`
	}
	if err := c.p.DecodeBody(ctx, resp, &out); err != nil {
		return nil, err
	}
	if len(out.Embeddings) != len(req.Input) {
		return nil, &canon.UpstreamError{Provider: c.p.Name, Status: http.StatusBadGateway, Message: "upstream returned a different number of embeddings than inputs"}
	}
	res := &canon.EmbedResponse{Model: model, Vectors: make([][]float64, len(out.Embeddings))}
	for i, e := range out.Embeddings {
		res.Vectors[i] = e.Values
	}
	return res, nil
}
