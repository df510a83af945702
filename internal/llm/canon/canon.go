package canon

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Wire families. A request remembers the family it arrived in so fields
// with no canonical meaning (Extra, raw blocks, native finish reasons) can
// be kept when the upstream speaks the same family.
const (
	FamilyOpenAI    = "openai"
	FamilyAnthropic = "anthropic"
	FamilyGemini    = "gemini"
)

// Message roles. Tool results travel as PartToolResult parts of a user
// message (Anthropic's shape, the most general of the three).
const (
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// PartType is the kind of a content part.
type PartType string

const (
	PartText       PartType = "text"
	PartImage      PartType = "image"
	PartToolCall   PartType = "tool_call"
	PartToolResult PartType = "tool_result"
	// PartRaw is a provider-native block with no canonical meaning (an
	// Anthropic thinking block); it is sent only to upstreams of Family.
	PartRaw PartType = "raw"
)

// Part is one piece of message content.
type Part struct {
	Type PartType `json:"type"`
	Text string   `json:"text,omitempty"` // text, or a tool result's content
	// Image: base64 Data with MediaType, or a URL.
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
	// Tool call and tool result.
	ToolID   string `json:"tool_id,omitempty"`
	ToolName string `json:"tool_name,omitempty"`
	// Args is the JSON text of a tool call's arguments object. OpenAI
	// carries it as a string, Anthropic and Gemini as an object.
	Args    string `json:"args,omitempty"`
	IsError bool   `json:"is_error,omitempty"`
	// CacheControl is Anthropic's prompt-caching marker, kept for
	// Anthropic upstreams and dropped for others.
	CacheControl json.RawMessage `json:"cache_control,omitempty"`
	Raw          json.RawMessage `json:"raw,omitempty"`
	Family       string          `json:"family,omitempty"`
	// Required marks a raw part that carries meaning (a document): an
	// upstream of another family refuses the request instead of dropping it.
	Required bool `json:"required,omitempty"`
}

// Message is one turn of the conversation.
type Message struct {
	Role  string `json:"role"`
	Parts []Part `json:"parts"`
}

// Tool is a function the model may call.
type Tool struct {
	Name         string          `json:"name"`
	Description  string          `json:"description,omitempty"`
	Parameters   json.RawMessage `json:"parameters,omitempty"` // JSON Schema object
	CacheControl json.RawMessage `json:"cache_control,omitempty"`
	Strict       *bool           `json:"strict,omitempty"` // OpenAI structured outputs
	// Raw is a provider-native tool (an Anthropic server tool such as
	// web_search) that only an upstream of Family can run.
	Raw    json.RawMessage `json:"raw,omitempty"`
	Family string          `json:"family,omitempty"`
}

// ToolChoice modes.
const (
	ToolAuto     = "auto"
	ToolNone     = "none"
	ToolRequired = "required"
	ToolNamed    = "tool"
)

// ToolChoice says whether and which tool the model must call.
type ToolChoice struct {
	Mode string `json:"mode"`
	Name string `json:"name,omitempty"`
}

// Request is a canonical chat request. Model is the alias the caller
// named. The exported JSON form (without the stream fields) is the cache
// key's input.
type Request struct {
	Model             string          `json:"model"`
	System            []Part          `json:"system,omitempty"`
	Messages          []Message       `json:"messages"`
	Tools             []Tool          `json:"tools,omitempty"`
	ToolChoice        *ToolChoice     `json:"tool_choice,omitempty"`
	ParallelToolCalls *bool           `json:"parallel_tool_calls,omitempty"`
	MaxTokens         int             `json:"max_tokens,omitempty"`
	Temperature       *float64        `json:"temperature,omitempty"`
	TopP              *float64        `json:"top_p,omitempty"`
	TopK              *int            `json:"top_k,omitempty"`
	Stop              []string        `json:"stop,omitempty"`
	Seed              *int64          `json:"seed,omitempty"`
	PresencePenalty   *float64        `json:"presence_penalty,omitempty"`
	FrequencyPenalty  *float64        `json:"frequency_penalty,omitempty"`
	ResponseFormat    json.RawMessage `json:"response_format,omitempty"` // OpenAI's response_format
	// Family is the wire family the request arrived in; Extra holds its
	// top-level fields with no canonical meaning, forwarded only to an
	// upstream of the same family.
	Family string                     `json:"family,omitempty"`
	Extra  map[string]json.RawMessage `json:"extra,omitempty"`

	Stream      bool        `json:"-"`
	StreamUsage bool        `json:"-"` // the client asked for a usage chunk (OpenAI stream_options)
	Header      http.Header `json:"-"` // same-family headers to forward (anthropic-beta)
}

// SystemText joins the system parts.
func (r *Request) SystemText() string {
	var b strings.Builder
	for i, p := range r.System {
		if i > 0 {
			b.WriteString("\n\n")
		}
		b.WriteString(p.Text)
	}
	return b.String()
}

// FinishReason is why generation stopped, in canonical (OpenAI-style)
// terms. Native keeps the provider's own word.
type FinishReason string

const (
	FinishStop          FinishReason = "stop"
	FinishLength        FinishReason = "length"
	FinishToolCalls     FinishReason = "tool_calls"
	FinishContentFilter FinishReason = "content_filter"
	// FinishMalformedCall is Gemini's MALFORMED_FUNCTION_CALL: the model
	// tried to call a tool and produced an invalid call.
	FinishMalformedCall FinishReason = "malformed_function_call"
	FinishOther         FinishReason = "other"
)

// Usage counts tokens. InputTokens includes cache reads and writes.
type Usage struct {
	InputTokens      int64 `json:"input_tokens"`
	OutputTokens     int64 `json:"output_tokens"`
	CacheReadTokens  int64 `json:"cache_read_tokens,omitempty"`
	CacheWriteTokens int64 `json:"cache_write_tokens,omitempty"`
}

// Total is input plus output tokens.
func (u Usage) Total() int64 { return u.InputTokens + u.OutputTokens }

// Response is a complete canonical answer.
type Response struct {
	ID     string       `json:"id"`
	Model  string       `json:"model"` // the upstream model that answered
	Parts  []Part       `json:"parts"` // text and tool calls, in order
	Finish FinishReason `json:"finish"`
	// Native is the provider's own finish reason in NativeFamily's words.
	Native       string `json:"native,omitempty"`
	NativeFamily string `json:"native_family,omitempty"`
	StopSequence string `json:"stop_sequence,omitempty"`
	Usage        Usage  `json:"usage"`
	Created      int64  `json:"created"`
}

// Text is the concatenated text of the response.
func (r *Response) Text() string {
	var b strings.Builder
	for _, p := range r.Parts {
		if p.Type == PartText {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

// EventKind is the kind of a stream event.
type EventKind int

const (
	EvStart     EventKind = iota + 1 // ID, Model; Usage may hold input tokens known up front
	EvText                           // Text is a delta
	EvToolStart                      // Index, ToolID, ToolName
	EvToolArgs                       // Index, Text is a fragment of the arguments JSON
	EvToolEnd                        // Index
	EvFinish                         // Finish, Native, NativeFamily, StopSequence
	EvUsage                          // Usage (final, cumulative)
)

// Event is one step of a streamed answer. Connectors emit EvStart first;
// EvFinish and EvUsage come after all content, in either order.
type Event struct {
	Kind         EventKind
	ID, Model    string
	Text         string
	Index        int
	ToolID       string
	ToolName     string
	Finish       FinishReason
	Native       string
	NativeFamily string
	StopSequence string
	Usage        Usage
}

// IsToken reports whether ev carries content, i.e. whether relaying it
// commits the gateway to this upstream (no fallback after it).
func (ev Event) IsToken() bool {
	switch ev.Kind {
	case EvText, EvToolStart, EvToolArgs, EvFinish:
		return true
	}
	return false
}

// Accumulator builds a Response from events.
type Accumulator struct {
	resp  Response
	tools map[int]int // tool index -> part index
}

func (a *Accumulator) Add(ev Event) {
	r := &a.resp
	switch ev.Kind {
	case EvStart:
		if ev.ID != "" {
			r.ID = ev.ID
		}
		if ev.Model != "" {
			r.Model = ev.Model
		}
		if ev.Usage != (Usage{}) {
			r.Usage = ev.Usage
		}
	case EvText:
		if n := len(r.Parts); n > 0 && r.Parts[n-1].Type == PartText {
			r.Parts[n-1].Text += ev.Text
		} else {
			r.Parts = append(r.Parts, Part{Type: PartText, Text: ev.Text})
		}
	case EvToolStart:
		if a.tools == nil {
			a.tools = map[int]int{}
		}
		a.tools[ev.Index] = len(r.Parts)
		r.Parts = append(r.Parts, Part{Type: PartToolCall, ToolID: ev.ToolID, ToolName: ev.ToolName})
	case EvToolArgs:
		if i, ok := a.tools[ev.Index]; ok {
			r.Parts[i].Args += ev.Text
		}
	case EvToolEnd:
	case EvFinish:
		r.Finish, r.Native, r.NativeFamily, r.StopSequence = ev.Finish, ev.Native, ev.NativeFamily, ev.StopSequence
	case EvUsage:
		r.Usage = ev.Usage
	}
}

// Result returns the response with empty tool arguments normalised to {}.
func (a *Accumulator) Result() *Response {
	r := a.resp
	for i := range r.Parts {
		if r.Parts[i].Type == PartToolCall && strings.TrimSpace(r.Parts[i].Args) == "" {
			r.Parts[i].Args = "{}"
		}
	}
	if r.Finish == "" {
		r.Finish = FinishStop
	}
	return &r
}

// Replay turns a stored response back into the events a stream of it
// would have produced.
func Replay(r *Response) []Event {
	evs := []Event{{Kind: EvStart, ID: r.ID, Model: r.Model}}
	tool := 0
	for _, p := range r.Parts {
		switch p.Type {
		case PartText:
			evs = append(evs, Event{Kind: EvText, Text: p.Text})
		case PartToolCall:
			evs = append(evs,
				Event{Kind: EvToolStart, Index: tool, ToolID: p.ToolID, ToolName: p.ToolName},
				Event{Kind: EvToolArgs, Index: tool, Text: p.Args},
				Event{Kind: EvToolEnd, Index: tool})
			tool++
		}
	}
	evs = append(evs,
		Event{Kind: EvFinish, Finish: r.Finish, Native: r.Native, NativeFamily: r.NativeFamily, StopSequence: r.StopSequence},
		Event{Kind: EvUsage, Usage: r.Usage})
	return evs
}

// EmbedRequest is a canonical embeddings request.
type EmbedRequest struct {
	Model      string                     `json:"model"`
	Input      []string                   `json:"input"`
	Dimensions *int                       `json:"dimensions,omitempty"`
	Extra      map[string]json.RawMessage `json:"extra,omitempty"`
}

// EmbedResponse holds one vector per input, in order.
type EmbedResponse struct {
	Model   string      `json:"model"`
	Vectors [][]float64 `json:"vectors"`
	Usage   Usage       `json:"usage"`
}

// NameToolResults gives every tool result the name of the call it answers
// (Gemini's functionResponse needs it; OpenAI's tool message lacks it).
func NameToolResults(req *Request) {
	names := map[string]string{}
	for mi := range req.Messages {
		for pi := range req.Messages[mi].Parts {
			p := &req.Messages[mi].Parts[pi]
			switch p.Type {
			case PartToolCall:
				names[p.ToolID] = p.ToolName
			case PartToolResult:
				if p.ToolName == "" {
					p.ToolName = names[p.ToolID]
				}
			}
		}
	}
}
