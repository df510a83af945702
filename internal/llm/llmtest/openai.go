package llmtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

func openAIError(w http.ResponseWriter, status int, msg, typ string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}})
}

// checkOpenAI enforces what the real chat completions API refuses.
func checkOpenAI(req map[string]any) string {
	if s, _ := req["model"].(string); s == "" {
		return "you must provide a model parameter"
	}
	msgs, ok := asList(req["messages"])
	if !ok || len(msgs) == 0 {
		return "messages: must be a non-empty array"
	}
	for i, m := range msgs {
		mm, ok := asMap(m)
		if !ok {
			return fmt.Sprintf("messages[%d]: not an object", i)
		}
		switch mm["role"] {
		case "system", "developer", "user":
		case "assistant":
			if tcs, ok := asList(mm["tool_calls"]); ok {
				for _, tc := range tcs {
					tcm, _ := asMap(tc)
					fn, _ := asMap(tcm["function"])
					if _, isString := fn["arguments"].(string); !isString {
						return fmt.Sprintf("messages[%d].tool_calls: function.arguments must be a string", i)
					}
					if id, _ := tcm["id"].(string); id == "" {
						return fmt.Sprintf("messages[%d].tool_calls: id required", i)
					}
				}
			}
		case "tool":
			if id, _ := mm["tool_call_id"].(string); id == "" {
				return fmt.Sprintf("messages[%d]: tool messages need tool_call_id", i)
			}
		default:
			return fmt.Sprintf("messages[%d].role: invalid value %v", i, mm["role"])
		}
	}
	if _, has := req["stream_options"]; has && req["stream"] != true {
		return "The 'stream_options' parameter is only allowed when 'stream' is enabled."
	}
	if _, has := req["parallel_tool_calls"]; has {
		if _, tools := req["tools"]; !tools {
			return "parallel_tool_calls is only allowed when 'tools' are specified."
		}
	}
	return ""
}

func (s *Server) serveOpenAI(w http.ResponseWriter, r *http.Request, body []byte) {
	got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if s.Key != "" && got != s.Key {
		openAIError(w, http.StatusUnauthorized, "Incorrect API key provided: "+got+".", "invalid_request_error")
		return
	}
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		openAIError(w, http.StatusBadRequest, "We could not parse the JSON body of your request.", "invalid_request_error")
		return
	}
	switch r.URL.Path {
	case "/v1/chat/completions":
	case "/v1/embeddings":
		s.openAIEmbeddings(w, req)
		return
	default:
		openAIError(w, http.StatusNotFound, "Invalid URL ("+r.Method+" "+r.URL.Path+")", "invalid_request_error")
		return
	}
	if msg := checkOpenAI(req); msg != "" {
		openAIError(w, http.StatusBadRequest, msg, "invalid_request_error")
		return
	}
	rep, ok := s.reply(w, r, got, func(status int, msg string) { openAIError(w, status, msg, "server_error") })
	if !ok {
		return
	}
	model, _ := req["model"].(string)
	finish := rep.Finish
	if finish == "" {
		finish = "stop"
		if len(rep.ToolCalls) > 0 {
			finish = "tool_calls"
		}
	}
	usage := map[string]any{
		"prompt_tokens": rep.Usage.Input, "completion_tokens": rep.Usage.Output, "total_tokens": rep.Usage.Input + rep.Usage.Output,
		"prompt_tokens_details": map[string]any{"cached_tokens": rep.Usage.CacheRead},
	}
	if req["stream"] != true {
		var tcs []any
		for _, tc := range rep.ToolCalls {
			tcs = append(tcs, map[string]any{"id": tc.ID, "type": "function", "function": map[string]any{"name": tc.Name, "arguments": tc.Args}})
		}
		msg := map[string]any{"role": "assistant", "content": nil, "refusal": nil}
		if rep.Text != "" || len(tcs) == 0 {
			msg["content"] = rep.Text
		}
		if len(tcs) > 0 {
			msg["tool_calls"] = tcs
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"id": "chatcmpl-fake", "object": "chat.completion", "created": time.Now().Unix(), "model": model,
			"choices": []any{map[string]any{"index": 0, "message": msg, "logprobs": nil, "finish_reason": finish}},
			"usage":   usage, "system_fingerprint": "fp_fake",
		})
		return
	}
	opts, _ := asMap(req["stream_options"])
	withUsage := opts["include_usage"] == true
	chunk := func(delta map[string]any, finish any) map[string]any {
		c := map[string]any{
			"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": time.Now().Unix(), "model": model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}},
		}
		if withUsage {
			c["usage"] = nil
		}
		return c
	}
	startSSE(w)
	sse(w, "", chunk(map[string]any{"role": "assistant", "content": "", "refusal": nil}, nil), rep.ChunkDelay)
	if rep.FailBeforeFirstToken {
		cut()
	}
	if !textDeltas(rep, words(rep.Text, rep.Chunks),
		func(_ int, part string) { sse(w, "", chunk(map[string]any{"content": part}, nil), rep.ChunkDelay) },
		func() {
			sse(w, "", map[string]any{"error": map[string]any{"message": "fake mid-stream failure", "type": "server_error"}}, 0)
		}) {
		return
	}
	for i, tc := range rep.ToolCalls {
		sse(w, "", chunk(map[string]any{"tool_calls": []any{map[string]any{"index": i, "id": tc.ID, "type": "function", "function": map[string]any{"name": tc.Name, "arguments": ""}}}}, nil), rep.ChunkDelay)
		for _, frag := range splitHalf(tc.Args) {
			sse(w, "", chunk(map[string]any{"tool_calls": []any{map[string]any{"index": i, "function": map[string]any{"arguments": frag}}}}, nil), rep.ChunkDelay)
		}
	}
	sse(w, "", chunk(map[string]any{}, finish), rep.ChunkDelay)
	if withUsage {
		sse(w, "", map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": time.Now().Unix(), "model": model, "choices": []any{}, "usage": usage}, 0)
	}
	sse(w, "", "[DONE]", 0)
}

// Vector is the deterministic embedding the fakes return for text.
func Vector(text string) []float64 {
	return []float64{float64(len(text)), 0.5, -0.25}
}

func (s *Server) openAIEmbeddings(w http.ResponseWriter, req map[string]any) {
	rep := s.next()
	if rep.Status != 0 && rep.Status != http.StatusOK {
		openAIError(w, rep.Status, errMessage(rep, ""), "server_error")
		return
	}
	var inputs []string
	switch in := req["input"].(type) {
	case string:
		inputs = []string{in}
	case []any:
		for _, x := range in {
			s, _ := x.(string)
			inputs = append(inputs, s)
		}
	}
	if req["encoding_format"] != nil && req["encoding_format"] != "float" {
		openAIError(w, http.StatusBadRequest, "the fake only does float", "invalid_request_error")
		return
	}
	data := make([]any, len(inputs))
	tokens := 0
	for i, in := range inputs {
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": Vector(in)}
		tokens += len(strings.Fields(in))
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data, "model": req["model"], "usage": map[string]any{"prompt_tokens": tokens, "total_tokens": tokens}})
}
