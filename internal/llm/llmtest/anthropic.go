package llmtest

import (
	"encoding/json"
	"fmt"
	"net/http"
)

func anthropicError(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}})
}

// checkAnthropic enforces what the real Messages API refuses.
func checkAnthropic(req map[string]any) string {
	if s, _ := req["model"].(string); s == "" {
		return "model: Field required"
	}
	if _, ok := req["max_tokens"].(float64); !ok {
		return "max_tokens: Field required"
	}
	if sys, has := req["system"]; has {
		switch sys.(type) {
		case string, []any:
		default:
			return "system: Input should be a valid string or list"
		}
	}
	msgs, ok := asList(req["messages"])
	if !ok || len(msgs) == 0 {
		return "messages: at least one message is required"
	}
	prevRole := ""
	for i, m := range msgs {
		mm, _ := asMap(m)
		role, _ := mm["role"].(string)
		if role != "user" && role != "assistant" {
			return fmt.Sprintf("messages.%d.role: Input should be 'user' or 'assistant'", i)
		}
		if role == prevRole {
			return fmt.Sprintf("messages.%d: roles must alternate between user and assistant", i)
		}
		prevRole = role
		blocks, isList := asList(mm["content"])
		if !isList {
			if _, isString := mm["content"].(string); !isString {
				return fmt.Sprintf("messages.%d.content: Input should be a valid string or list", i)
			}
			continue
		}
		seenOther := false
		for j, b := range blocks {
			bm, _ := asMap(b)
			switch bm["type"] {
			case "text":
				if t, _ := bm["text"].(string); t == "" {
					return fmt.Sprintf("messages.%d.content.%d: text content blocks must be non-empty", i, j)
				}
				seenOther = true
			case "tool_use":
				if role != "assistant" {
					return fmt.Sprintf("messages.%d.content.%d: tool_use blocks belong to assistant turns", i, j)
				}
				if _, obj := asMap(bm["input"]); !obj {
					return fmt.Sprintf("messages.%d.content.%d.tool_use.input: Input should be a valid dictionary", i, j)
				}
			case "tool_result":
				if role != "user" {
					return fmt.Sprintf("messages.%d.content.%d: tool_result blocks belong to user turns", i, j)
				}
				if seenOther {
					return fmt.Sprintf("messages.%d: tool_result blocks must come first in the content", i)
				}
			default:
				seenOther = true
			}
		}
	}
	return ""
}

func (s *Server) serveAnthropic(w http.ResponseWriter, r *http.Request, body []byte) {
	got := r.Header.Get("x-api-key")
	if s.Key != "" && got != s.Key {
		anthropicError(w, http.StatusUnauthorized, "authentication_error", "invalid x-api-key "+got)
		return
	}
	if r.Header.Get("anthropic-version") == "" {
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", "anthropic-version: header is required")
		return
	}
	if r.URL.Path != "/v1/messages" {
		anthropicError(w, http.StatusNotFound, "not_found_error", "Not Found")
		return
	}
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", "invalid JSON")
		return
	}
	if msg := checkAnthropic(req); msg != "" {
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", msg)
		return
	}
	rep, ok := s.reply(w, r, got, func(status int, msg string) {
		typ := "api_error"
		if status == 529 {
			typ = "overloaded_error"
		}
		anthropicError(w, status, typ, msg)
	})
	if !ok {
		return
	}
	model, _ := req["model"].(string)
	stop := rep.Finish
	if stop == "" {
		stop = "end_turn"
		if len(rep.ToolCalls) > 0 {
			stop = "tool_use"
		}
	}
	usage := map[string]any{
		"input_tokens": rep.Usage.Input, "output_tokens": rep.Usage.Output,
		"cache_creation_input_tokens": rep.Usage.CacheWrite, "cache_read_input_tokens": rep.Usage.CacheRead,
	}
	if req["stream"] != true {
		content := []any{}
		if rep.Text != "" {
			content = append(content, map[string]any{"type": "text", "text": rep.Text})
		}
		for _, tc := range rep.ToolCalls {
			content = append(content, map[string]any{"type": "tool_use", "id": tc.ID, "name": tc.Name, "input": json.RawMessage(tc.Args)})
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": content,
			"stop_reason": stop, "stop_sequence": nil, "usage": usage,
		})
		return
	}
	startSSE(w)
	d := rep.ChunkDelay
	startUsage := map[string]any{"input_tokens": rep.Usage.Input, "output_tokens": 1,
		"cache_creation_input_tokens": rep.Usage.CacheWrite, "cache_read_input_tokens": rep.Usage.CacheRead}
	sse(w, "message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": []any{},
		"stop_reason": nil, "stop_sequence": nil, "usage": startUsage}}, d)
	if rep.FailBeforeFirstToken {
		cut()
	}
	idx := 0
	if rep.Text != "" {
		sse(w, "content_block_start", map[string]any{"type": "content_block_start", "index": idx, "content_block": map[string]any{"type": "text", "text": ""}}, d)
		sse(w, "ping", map[string]any{"type": "ping"}, 0)
		if !textDeltas(rep, words(rep.Text, rep.Chunks),
			func(_ int, part string) {
				sse(w, "content_block_delta", map[string]any{"type": "content_block_delta", "index": idx, "delta": map[string]any{"type": "text_delta", "text": part}}, d)
			},
			func() {
				sse(w, "error", map[string]any{"type": "error", "error": map[string]any{"type": "overloaded_error", "message": "Overloaded"}}, 0)
			}) {
			return
		}
		sse(w, "content_block_stop", map[string]any{"type": "content_block_stop", "index": idx}, d)
		idx++
	}
	for _, tc := range rep.ToolCalls {
		sse(w, "content_block_start", map[string]any{"type": "content_block_start", "index": idx, "content_block": map[string]any{"type": "tool_use", "id": tc.ID, "name": tc.Name, "input": map[string]any{}}}, d)
		for _, frag := range splitHalf(tc.Args) {
			sse(w, "content_block_delta", map[string]any{"type": "content_block_delta", "index": idx, "delta": map[string]any{"type": "input_json_delta", "partial_json": frag}}, d)
		}
		sse(w, "content_block_stop", map[string]any{"type": "content_block_stop", "index": idx}, d)
		idx++
	}
	sse(w, "message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": stop, "stop_sequence": nil}, "usage": map[string]any{"output_tokens": rep.Usage.Output}}, d)
	sse(w, "message_stop", map[string]any{"type": "message_stop"}, 0)
}
