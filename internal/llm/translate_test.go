package llm

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/llm/canon"
	"github.com/cortexrt/cortex/internal/llm/llmtest"
	"github.com/google/go-cmp/cmp"
)

// The conversation every connector is tested with: a system prompt, a
// user turn, an assistant tool call, its result, and a new user turn,
// with one tool declared.
var weatherSchema = map[string]any{
	"type":       "object",
	"properties": map[string]any{"city": map[string]any{"type": "string"}},
	"required":   []any{"city"},
}

func openAIConversation(model string, stream bool) map[string]any {
	return map[string]any{
		"model": model,
		"messages": []any{
			map[string]any{"role": "system", "content": "You are terse."},
			map[string]any{"role": "user", "content": "What is the weather in Paris?"},
			map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{
				map[string]any{"id": "call_1", "type": "function", "function": map[string]any{"name": "get_weather", "arguments": `{"city":"Paris"}`}},
			}},
			map[string]any{"role": "tool", "tool_call_id": "call_1", "content": `{"temp_c":21}`},
			map[string]any{"role": "user", "content": "Should I bring a coat?"},
		},
		"tools": []any{map[string]any{"type": "function", "function": map[string]any{
			"name": "get_weather", "description": "Weather by city", "parameters": weatherSchema}}},
		"max_tokens":  100,
		"temperature": 0.2,
		"stream":      stream,
	}
}

func anthropicConversation(model string, stream bool) map[string]any {
	return map[string]any{
		"model":      model,
		"max_tokens": 100,
		"system":     "You are terse.",
		"messages": []any{
			map[string]any{"role": "user", "content": "What is the weather in Paris?"},
			map[string]any{"role": "assistant", "content": []any{
				map[string]any{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": map[string]any{"city": "Paris"}},
			}},
			map[string]any{"role": "user", "content": []any{
				map[string]any{"type": "tool_result", "tool_use_id": "call_1", "content": `{"temp_c":21}`},
				map[string]any{"type": "text", "text": "Should I bring a coat?"},
			}},
		},
		"tools":       []any{map[string]any{"name": "get_weather", "description": "Weather by city", "input_schema": weatherSchema}},
		"temperature": 0.2,
		"stream":      stream,
	}
}

// theReply is what every fake answers: text, then a tool call.
func theReply(kind llmtest.Kind) llmtest.Reply {
	r := llmtest.Reply{
		Text:      "Take a light jacket.",
		ToolCalls: []llmtest.ToolCall{{ID: "call_2", Name: "get_forecast", Args: `{"city":"Paris","days":2}`}},
		Usage:     llmtest.Usage{Input: 100, Output: 20, CacheRead: 30},
	}
	if kind == llmtest.Anthropic {
		r.Usage.CacheWrite = 5
	}
	return r
}

// connectorCase describes one connector under test and what the upstream
// must have received, in its own wire format.
type connectorCase struct {
	alias     string
	fake      func(*env) *llmtest.Server
	kind      llmtest.Kind
	usage     canon.Usage // canonical usage the reply amounts to
	checkWire func(t *testing.T, req llmtest.Request, stream bool)
}

func connectorCases() []connectorCase {
	openaiWire := func(compatible bool) func(*testing.T, llmtest.Request, bool) {
		return func(t *testing.T, r llmtest.Request, stream bool) {
			if r.Path != "/v1/chat/completions" {
				t.Errorf("path %s", r.Path)
			}
			if r.Header.Get("Authorization") != "Bearer "+keyOpenAI && !compatible {
				t.Errorf("authorization header %q", r.Header.Get("Authorization"))
			}
			if compatible && r.Header.Get("Authorization") != "" {
				t.Errorf("a keyless openai-compatible provider got an Authorization header")
			}
			b := r.JSON()
			msgs := b["messages"].([]any)
			roles := []string{}
			for _, m := range msgs {
				roles = append(roles, m.(map[string]any)["role"].(string))
			}
			if d := cmp.Diff([]string{"system", "user", "assistant", "tool", "user"}, roles); d != "" {
				t.Errorf("roles (-want +got):\n%s", d)
			}
			if got := msgs[0].(map[string]any)["content"]; got != "You are terse." {
				t.Errorf("system content %v", got)
			}
			tc := msgs[2].(map[string]any)["tool_calls"].([]any)[0].(map[string]any)
			if args, ok := tc["function"].(map[string]any)["arguments"].(string); !ok || args != `{"city":"Paris"}` {
				t.Errorf("tool call arguments must be the JSON string, got %#v", tc["function"])
			}
			if msgs[3].(map[string]any)["tool_call_id"] != "call_1" || msgs[3].(map[string]any)["content"] != `{"temp_c":21}` {
				t.Errorf("tool message %v", msgs[3])
			}
			limit := "max_completion_tokens"
			if compatible {
				limit = "max_tokens"
			}
			if b[limit] != float64(100) {
				t.Errorf("%s = %v in %v", limit, b[limit], b)
			}
			if fn := b["tools"].([]any)[0].(map[string]any)["function"].(map[string]any); fn["name"] != "get_weather" || fn["parameters"] == nil {
				t.Errorf("tools %v", fn)
			}
			if stream {
				so, _ := b["stream_options"].(map[string]any)
				if b["stream"] != true || so["include_usage"] != true {
					t.Errorf("stream must force include_usage: %v %v", b["stream"], b["stream_options"])
				}
			}
		}
	}
	return []connectorCase{
		{alias: "oa", kind: llmtest.OpenAI, fake: func(e *env) *llmtest.Server { return e.openai },
			usage: canon.Usage{InputTokens: 100, OutputTokens: 20, CacheReadTokens: 30}, checkWire: openaiWire(false)},
		{alias: "local", kind: llmtest.OpenAI, fake: func(e *env) *llmtest.Server { return e.local },
			usage: canon.Usage{InputTokens: 100, OutputTokens: 20, CacheReadTokens: 30}, checkWire: openaiWire(true)},
		{alias: "an", kind: llmtest.Anthropic, fake: func(e *env) *llmtest.Server { return e.anth },
			usage: canon.Usage{InputTokens: 135, OutputTokens: 20, CacheReadTokens: 30, CacheWriteTokens: 5},
			checkWire: func(t *testing.T, r llmtest.Request, stream bool) {
				if r.Path != "/v1/messages" || r.Header.Get("x-api-key") != keyAnthropic || r.Header.Get("anthropic-version") == "" {
					t.Errorf("path %s, headers %v", r.Path, r.Header)
				}
				b := r.JSON()
				if b["system"] != "You are terse." {
					t.Errorf("system must be top-level, got %v", b["system"])
				}
				msgs := b["messages"].([]any)
				roles := []string{}
				for _, m := range msgs {
					roles = append(roles, m.(map[string]any)["role"].(string))
				}
				if d := cmp.Diff([]string{"user", "assistant", "user"}, roles); d != "" {
					t.Errorf("roles (-want +got):\n%s", d)
				}
				tu := msgs[1].(map[string]any)["content"].([]any)[0].(map[string]any)
				if tu["type"] != "tool_use" || tu["id"] != "call_1" || tu["name"] != "get_weather" {
					t.Errorf("tool_use block %v", tu)
				}
				if d := cmp.Diff(map[string]any{"city": "Paris"}, tu["input"]); d != "" {
					t.Errorf("tool_use input must be an object (-want +got):\n%s", d)
				}
				last := msgs[2].(map[string]any)["content"].([]any)
				tr := last[0].(map[string]any)
				if tr["type"] != "tool_result" || tr["tool_use_id"] != "call_1" || tr["content"] != `{"temp_c":21}` {
					t.Errorf("tool_result block %v", tr)
				}
				if txt := last[1].(map[string]any); txt["type"] != "text" || txt["text"] != "Should I bring a coat?" {
					t.Errorf("text after the tool result %v", txt)
				}
				if tool := b["tools"].([]any)[0].(map[string]any); tool["name"] != "get_weather" || tool["input_schema"] == nil {
					t.Errorf("tools %v", tool)
				}
				if b["max_tokens"] != float64(100) || b["temperature"] != 0.2 {
					t.Errorf("max_tokens %v temperature %v", b["max_tokens"], b["temperature"])
				}
				if (b["stream"] == true) != stream {
					t.Errorf("stream %v", b["stream"])
				}
			}},
		{alias: "gm", kind: llmtest.Gemini, fake: func(e *env) *llmtest.Server { return e.gemini },
			usage: canon.Usage{InputTokens: 100, OutputTokens: 20, CacheReadTokens: 30},
			checkWire: func(t *testing.T, r llmtest.Request, stream bool) {
				wantPath := "/v1beta/models/gemini-2.0-flash:generateContent"
				if stream {
					wantPath = "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
					if r.Query.Get("alt") != "sse" {
						t.Errorf("stream without alt=sse")
					}
				}
				if r.Path != wantPath || r.Header.Get("x-goog-api-key") != keyGemini {
					t.Errorf("path %s want %s", r.Path, wantPath)
				}
				b := r.JSON()
				si := b["systemInstruction"].(map[string]any)["parts"].([]any)[0].(map[string]any)
				if si["text"] != "You are terse." {
					t.Errorf("systemInstruction %v", si)
				}
				contents := b["contents"].([]any)
				roles := []string{}
				for _, c := range contents {
					roles = append(roles, c.(map[string]any)["role"].(string))
				}
				if d := cmp.Diff([]string{"user", "model", "user"}, roles); d != "" {
					t.Errorf("roles (-want +got):\n%s", d)
				}
				fc := contents[1].(map[string]any)["parts"].([]any)[0].(map[string]any)["functionCall"].(map[string]any)
				if d := cmp.Diff(map[string]any{"name": "get_weather", "args": map[string]any{"city": "Paris"}}, fc); d != "" {
					t.Errorf("functionCall (-want +got):\n%s", d)
				}
				parts := contents[2].(map[string]any)["parts"].([]any)
				fr := parts[0].(map[string]any)["functionResponse"].(map[string]any)
				if d := cmp.Diff(map[string]any{"name": "get_weather", "response": map[string]any{"temp_c": float64(21)}}, fr); d != "" {
					t.Errorf("functionResponse (-want +got):\n%s", d)
				}
				if parts[1].(map[string]any)["text"] != "Should I bring a coat?" {
					t.Errorf("user text %v", parts[1])
				}
				gc := b["generationConfig"].(map[string]any)
				if gc["maxOutputTokens"] != float64(100) || gc["temperature"] != 0.2 {
					t.Errorf("generationConfig %v", gc)
				}
				decl := b["tools"].([]any)[0].(map[string]any)["functionDeclarations"].([]any)[0].(map[string]any)
				if decl["name"] != "get_weather" {
					t.Errorf("functionDeclarations %v", decl)
				}
			}},
	}
}

func TestTranslationOpenAIIngress(t *testing.T) {
	e := newEnv(t)
	tok := e.register("p", "a", "oa", "an", "gm", "local")
	for _, cc := range connectorCases() {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", cc.alias, stream), func(t *testing.T) {
				fake := cc.fake(e)
				fake.Push(theReply(cc.kind))
				body := openAIConversation(cc.alias, stream)
				if stream {
					body["stream_options"] = map[string]any{"include_usage": true}
				}
				a := e.post("/v1/chat/completions", tok, body)
				if a.status != http.StatusOK {
					t.Fatalf("status %d: %s", a.status, a.body)
				}
				last, ok := fake.Last()
				if !ok {
					t.Fatal("upstream received nothing")
				}
				cc.checkWire(t, last, stream)
				if a.header.Get(HeaderAddedLatency) == "" {
					t.Error("no added-latency header")
				}
				wantUsage := map[string]any{
					"prompt_tokens": float64(cc.usage.InputTokens), "completion_tokens": float64(cc.usage.OutputTokens),
					"total_tokens": float64(cc.usage.Total()), "prompt_tokens_details": map[string]any{"cached_tokens": float64(cc.usage.CacheReadTokens)},
				}
				var text, finish, toolName, toolID, args string
				var usage map[string]any
				if stream {
					res := parseOpenAIStream(t, a.body)
					if !res.done || res.firstRole != "assistant" {
						t.Errorf("stream done=%v role=%q", res.done, res.firstRole)
					}
					text, finish, usage = res.text, res.finish, res.usage
					if len(res.tools) != 1 {
						t.Fatalf("tool calls %v", res.tools)
					}
					toolName, toolID, args = res.tools[0].name, res.tools[0].id, res.tools[0].args
				} else {
					var out struct {
						Object  string `json:"object"`
						Choices []struct {
							Message struct {
								Content   string `json:"content"`
								ToolCalls []struct {
									ID       string `json:"id"`
									Type     string `json:"type"`
									Function struct {
										Name      string `json:"name"`
										Arguments any    `json:"arguments"`
									} `json:"function"`
								} `json:"tool_calls"`
							} `json:"message"`
							FinishReason string `json:"finish_reason"`
						} `json:"choices"`
						Usage map[string]any `json:"usage"`
					}
					if err := json.Unmarshal(a.body, &out); err != nil {
						t.Fatal(err)
					}
					if out.Object != "chat.completion" || len(out.Choices) != 1 || len(out.Choices[0].Message.ToolCalls) != 1 {
						t.Fatalf("answer %s", a.body)
					}
					m := out.Choices[0].Message
					text, finish, usage = m.Content, out.Choices[0].FinishReason, out.Usage
					tc := m.ToolCalls[0]
					toolName, toolID = tc.Function.Name, tc.ID
					s, isString := tc.Function.Arguments.(string)
					if !isString || tc.Type != "function" {
						t.Fatalf("arguments must be a JSON string: %#v", tc.Function.Arguments)
					}
					args = s
				}
				if text != "Take a light jacket." || finish != "tool_calls" || toolName != "get_forecast" || toolID == "" {
					t.Errorf("text %q finish %q tool %q id %q", text, finish, toolName, toolID)
				}
				var parsed map[string]any
				if err := json.Unmarshal([]byte(args), &parsed); err != nil {
					t.Errorf("arguments %q: %v", args, err)
				}
				if d := cmp.Diff(map[string]any{"city": "Paris", "days": float64(2)}, parsed); d != "" {
					t.Errorf("arguments (-want +got):\n%s", d)
				}
				if d := cmp.Diff(wantUsage, usage); d != "" {
					t.Errorf("usage (-want +got):\n%s", d)
				}
			})
		}
	}
}

func TestTranslationAnthropicIngress(t *testing.T) {
	e := newEnv(t)
	tok := e.register("p", "a", "oa", "an", "gm", "local")
	for _, cc := range connectorCases() {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", cc.alias, stream), func(t *testing.T) {
				fake := cc.fake(e)
				fake.Push(theReply(cc.kind))
				a := e.post("/v1/messages", tok, anthropicConversation(cc.alias, stream))
				if a.status != http.StatusOK {
					t.Fatalf("status %d: %s", a.status, a.body)
				}
				last, _ := fake.Last()
				cc.checkWire(t, last, stream)
				u := cc.usage
				wantUsage := map[string]any{
					"input_tokens":                float64(u.InputTokens - u.CacheReadTokens - u.CacheWriteTokens),
					"output_tokens":               float64(u.OutputTokens),
					"cache_read_input_tokens":     float64(u.CacheReadTokens),
					"cache_creation_input_tokens": float64(u.CacheWriteTokens),
				}
				var blocks []map[string]any
				var stop string
				var usage map[string]any
				if stream {
					res := parseAnthropicStream(t, a.body)
					if res.types[0] != "message_start" || res.types[len(res.types)-1] != "message_stop" || res.types[len(res.types)-2] != "message_delta" {
						t.Errorf("event order %v", res.types)
					}
					blocks, stop, usage = res.blocks, res.stop, res.usage
				} else {
					var out struct {
						Type       string           `json:"type"`
						Role       string           `json:"role"`
						Content    []map[string]any `json:"content"`
						StopReason string           `json:"stop_reason"`
						Usage      map[string]any   `json:"usage"`
					}
					if err := json.Unmarshal(a.body, &out); err != nil {
						t.Fatal(err)
					}
					if out.Type != "message" || out.Role != "assistant" {
						t.Errorf("type %q role %q", out.Type, out.Role)
					}
					blocks, stop, usage = out.Content, out.StopReason, out.Usage
				}
				if len(blocks) != 2 {
					t.Fatalf("blocks %v", blocks)
				}
				if blocks[0]["type"] != "text" || blocks[0]["text"] != "Take a light jacket." {
					t.Errorf("text block %v", blocks[0])
				}
				tu := blocks[1]
				if tu["type"] != "tool_use" || tu["name"] != "get_forecast" || tu["id"] == "" {
					t.Errorf("tool_use block %v", tu)
				}
				if d := cmp.Diff(map[string]any{"city": "Paris", "days": float64(2)}, tu["input"]); d != "" {
					t.Errorf("tool input must be an object (-want +got):\n%s", d)
				}
				if stop != "tool_use" {
					t.Errorf("stop_reason %q", stop)
				}
				if d := cmp.Diff(wantUsage, usage); d != "" {
					t.Errorf("usage (-want +got):\n%s", d)
				}
			})
		}
	}
}

// Gemini's safety and malformed-call reasons reach the caller: mapped to
// the caller's word and kept verbatim beside it.
func TestGeminiFinishReasonsSurface(t *testing.T) {
	e := newEnv(t)
	tok := e.register("p", "a", "gm")
	cases := []struct {
		name       string
		reply      llmtest.Reply
		wantOpenAI string
		wantAnthr  string
		wantNative string
	}{
		{"safety", llmtest.Reply{Finish: "SAFETY", Text: "I can"}, "content_filter", "refusal", "SAFETY"},
		{"recitation", llmtest.Reply{Finish: "RECITATION", Text: "Once"}, "content_filter", "refusal", "RECITATION"},
		{"malformed call", llmtest.Reply{Finish: "MALFORMED_FUNCTION_CALL", Text: "x"}, "malformed_function_call", "malformed_function_call", "MALFORMED_FUNCTION_CALL"},
		{"prompt blocked", llmtest.Reply{PromptBlocked: "SAFETY"}, "content_filter", "refusal", "PROMPT_BLOCKED_SAFETY"},
	}
	for _, tc := range cases {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", tc.name, stream), func(t *testing.T) {
				e.gemini.Push(tc.reply, tc.reply)
				a := e.post("/v1/chat/completions", tok, map[string]any{"model": "gm", "stream": stream, "messages": []any{map[string]any{"role": "user", "content": "hi"}}})
				if a.status != http.StatusOK {
					t.Fatalf("status %d: %s", a.status, a.body)
				}
				var finish, native string
				if stream {
					res := parseOpenAIStream(t, a.body)
					finish, native = res.finish, res.native
				} else {
					ch := a.json(t)["choices"].([]any)[0].(map[string]any)
					finish, _ = ch["finish_reason"].(string)
					native, _ = ch["native_finish_reason"].(string)
				}
				if finish != tc.wantOpenAI || native != tc.wantNative {
					t.Errorf("openai finish %q native %q, want %q %q", finish, native, tc.wantOpenAI, tc.wantNative)
				}
				a = e.post("/v1/messages", tok, map[string]any{"model": "gm", "max_tokens": 10, "stream": stream, "messages": []any{map[string]any{"role": "user", "content": "hi"}}})
				if a.status != http.StatusOK {
					t.Fatalf("status %d: %s", a.status, a.body)
				}
				var stop string
				if stream {
					res := parseAnthropicStream(t, a.body)
					stop, native = res.stop, res.native
				} else {
					m := a.json(t)
					stop, _ = m["stop_reason"].(string)
					native, _ = m["native_stop_reason"].(string)
				}
				if stop != tc.wantAnthr || native != tc.wantNative {
					t.Errorf("anthropic stop %q native %q, want %q %q", stop, native, tc.wantAnthr, tc.wantNative)
				}
			})
		}
	}
}

// Usage is known for streams even when the caller did not ask for it:
// include_usage is forced upstream, the usage chunk is only relayed when
// asked for, and the call is metered either way.
func TestOpenAIStreamForcesUsage(t *testing.T) {
	e := newEnv(t)
	tok := e.register("p", "a", "oa")
	for _, asked := range []bool{false, true} {
		t.Run(fmt.Sprintf("include_usage=%v", asked), func(t *testing.T) {
			e.openai.Push(llmtest.Reply{Text: "a b c", Usage: llmtest.Usage{Input: 11, Output: 3}})
			body := map[string]any{"model": "oa", "stream": true, "messages": []any{map[string]any{"role": "user", "content": "hi"}}}
			if asked {
				body["stream_options"] = map[string]any{"include_usage": true}
			}
			before := usageTotal(t, e, "a")
			a := e.post("/v1/chat/completions", tok, body)
			res := parseOpenAIStream(t, a.body)
			last, _ := e.openai.Last()
			if so, _ := last.JSON()["stream_options"].(map[string]any); so["include_usage"] != true {
				t.Errorf("upstream stream_options %v", last.JSON()["stream_options"])
			}
			if (res.usage != nil) != asked {
				t.Errorf("usage chunk relayed=%v, asked=%v", res.usage != nil, asked)
			}
			after := usageTotal(t, e, "a")
			if got := after.InputTokens - before.InputTokens; got != 11 {
				t.Errorf("metered input tokens %d, want 11", got)
			}
			if res.text != "a b c" || !res.done {
				t.Errorf("text %q done %v", res.text, res.done)
			}
		})
	}
}

func usageTotal(t *testing.T, e *env, agent string) api.LLMUsageRow {
	t.Helper()
	rep, err := e.gw.Usage(t.Context(), UsageQuery{Agent: agent})
	if err != nil {
		t.Fatal(err)
	}
	return rep.Total
}

// Fields with no canonical meaning survive a same-family trip.
func TestSameFamilyPassthrough(t *testing.T) {
	e := newEnv(t)
	tok := e.register("p", "a", "oa", "an")
	t.Run("openai", func(t *testing.T) {
		e.post("/v1/chat/completions", tok, map[string]any{"model": "oa", "user": "u-42", "logprobs": true, "messages": []any{map[string]any{"role": "user", "content": "hi"}}})
		last, _ := e.openai.Last()
		b := last.JSON()
		if b["user"] != "u-42" || b["logprobs"] != true {
			t.Errorf("extra fields lost: %v", b)
		}
	})
	t.Run("anthropic", func(t *testing.T) {
		a := e.do(http.MethodPost, "/v1/messages", tok, map[string]any{
			"model": "an", "max_tokens": 10, "metadata": map[string]any{"user_id": "u-42"},
			"system":   []any{map[string]any{"type": "text", "text": "long prompt", "cache_control": map[string]any{"type": "ephemeral"}}},
			"messages": []any{map[string]any{"role": "user", "content": "hi"}},
		}, map[string]string{"anthropic-beta": "prompt-caching-2024-07-31"})
		if a.status != http.StatusOK {
			t.Fatalf("status %d %s", a.status, a.body)
		}
		last, _ := e.anth.Last()
		b := last.JSON()
		if d := cmp.Diff(map[string]any{"user_id": "u-42"}, b["metadata"]); d != "" {
			t.Errorf("metadata (-want +got):\n%s", d)
		}
		sys, _ := b["system"].([]any)
		if len(sys) != 1 || sys[0].(map[string]any)["cache_control"] == nil {
			t.Errorf("cache_control lost: %v", b["system"])
		}
		if last.Header.Get("anthropic-beta") != "prompt-caching-2024-07-31" {
			t.Errorf("anthropic-beta header lost")
		}
		if a.json(t)["stop_reason"] != "end_turn" {
			t.Errorf("stop_reason %v", a.json(t)["stop_reason"])
		}
	})
	t.Run("anthropic fields do not leak to openai", func(t *testing.T) {
		e.do(http.MethodPost, "/v1/messages", tok, map[string]any{
			"model": "oa", "max_tokens": 10, "metadata": map[string]any{"user_id": "u"},
			"messages": []any{map[string]any{"role": "user", "content": "hi"}},
		}, nil)
		last, _ := e.openai.Last()
		if _, has := last.JSON()["metadata"]; has {
			t.Errorf("anthropic metadata forwarded to openai: %s", last.Body)
		}
	})
}

func TestEmbeddings(t *testing.T) {
	e := newEnv(t, func(c *config.LLM) {
		c.Aliases["emb"] = config.LLMAlias{Targets: []config.LLMTarget{{Provider: "anthropic", Model: "none"}, {Provider: "openai", Model: "text-embedding-3-small"}}}
		c.Aliases["gemb"] = config.LLMAlias{Targets: []config.LLMTarget{{Provider: "gemini", Model: "text-embedding-004"}}}
	})
	tok := e.register("p", "a", "emb", "gemb", "an")
	for _, alias := range []string{"emb", "gemb"} {
		t.Run(alias, func(t *testing.T) {
			a := e.post("/v1/embeddings", tok, map[string]any{"model": alias, "input": []string{"hello", "hi"}})
			if a.status != http.StatusOK {
				t.Fatalf("status %d %s", a.status, a.body)
			}
			var out struct {
				Data []struct {
					Index     int       `json:"index"`
					Embedding []float64 `json:"embedding"`
				} `json:"data"`
			}
			if err := json.Unmarshal(a.body, &out); err != nil {
				t.Fatal(err)
			}
			if len(out.Data) != 2 || cmp.Diff(llmtest.Vector("hello"), out.Data[0].Embedding) != "" || cmp.Diff(llmtest.Vector("hi"), out.Data[1].Embedding) != "" {
				t.Errorf("embeddings %s", a.body)
			}
		})
	}
	t.Run("base64", func(t *testing.T) {
		a := e.post("/v1/embeddings", tok, map[string]any{"model": "emb", "input": "hello", "encoding_format": "base64"})
		var out struct {
			Data []struct {
				Embedding string `json:"embedding"`
			} `json:"data"`
		}
		if err := json.Unmarshal(a.body, &out); err != nil || len(out.Data) != 1 {
			t.Fatalf("%s %v", a.body, err)
		}
		// 3 float32 values, base64 of 12 bytes.
		if len(out.Data[0].Embedding) != 16 {
			t.Errorf("base64 embedding %q", out.Data[0].Embedding)
		}
	})
	t.Run("no embeddings target", func(t *testing.T) {
		a := e.post("/v1/embeddings", tok, map[string]any{"model": "an", "input": "hello"})
		if a.status == http.StatusOK {
			t.Errorf("anthropic-only alias answered embeddings: %s", a.body)
		}
	})
}
