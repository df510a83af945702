package llmtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

func geminiError(w http.ResponseWriter, status int, st, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": status, "message": msg, "status": st}})
}

// checkGemini enforces what the real generateContent API refuses.
func checkGemini(req map[string]any) string {
	contents, ok := asList(req["contents"])
	if !ok || len(contents) == 0 {
		return "* GenerateContentRequest.contents: contents is not specified"
	}
	for i, c := range contents {
		cm, _ := asMap(c)
		role, _ := cm["role"].(string)
		if role != "user" && role != "model" {
			return fmt.Sprintf("Please use a valid role: user, model (contents[%d].role %q).", i, role)
		}
		parts, _ := asList(cm["parts"])
		if len(parts) == 0 {
			return fmt.Sprintf("contents[%d].parts must not be empty", i)
		}
		for j, p := range parts {
			pm, _ := asMap(p)
			if fc, has := pm["functionCall"]; has {
				fcm, _ := asMap(fc)
				if _, obj := asMap(fcm["args"]); !obj {
					return fmt.Sprintf("contents[%d].parts[%d].functionCall.args must be an object", i, j)
				}
			}
			if fr, has := pm["functionResponse"]; has {
				frm, _ := asMap(fr)
				if n, _ := frm["name"].(string); n == "" {
					return fmt.Sprintf("contents[%d].parts[%d].functionResponse.name is required", i, j)
				}
				if _, obj := asMap(frm["response"]); !obj {
					return fmt.Sprintf("contents[%d].parts[%d].functionResponse.response must be an object", i, j)
				}
			}
		}
	}
	return ""
}

func (s *Server) serveGemini(w http.ResponseWriter, r *http.Request, body []byte) {
	got := r.Header.Get("x-goog-api-key")
	if got == "" {
		got = r.URL.Query().Get("key")
	}
	if s.Key != "" && got != s.Key {
		geminiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key. ("+got+")")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1beta/models/")
	model, method, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 {
		geminiError(w, http.StatusNotFound, "NOT_FOUND", "not found")
		return
	}
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		geminiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid JSON payload")
		return
	}
	switch method {
	case "generateContent", "streamGenerateContent":
	case "batchEmbedContents":
		s.geminiEmbed(w, req)
		return
	default:
		geminiError(w, http.StatusNotFound, "NOT_FOUND", "method not found")
		return
	}
	stream := method == "streamGenerateContent"
	if stream && r.URL.Query().Get("alt") != "sse" {
		geminiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "the fake only streams with alt=sse")
		return
	}
	if msg := checkGemini(req); msg != "" {
		geminiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", msg)
		return
	}
	rep, ok := s.reply(w, r, got, func(status int, msg string) { geminiError(w, status, "UNAVAILABLE", msg) })
	if !ok {
		return
	}
	finish := rep.Finish
	if finish == "" {
		finish = "STOP"
	}
	usage := map[string]any{
		"promptTokenCount": rep.Usage.Input, "candidatesTokenCount": rep.Usage.Output,
		"totalTokenCount": rep.Usage.Input + rep.Usage.Output,
	}
	if rep.Usage.CacheRead > 0 {
		usage["cachedContentTokenCount"] = rep.Usage.CacheRead
	}
	var calls []any
	for _, tc := range rep.ToolCalls {
		calls = append(calls, map[string]any{"functionCall": map[string]any{"name": tc.Name, "args": json.RawMessage(tc.Args)}})
	}
	candidate := func(parts []any, finish string) map[string]any {
		c := map[string]any{"content": map[string]any{"role": "model", "parts": parts}, "index": 0}
		if finish != "" {
			c["finishReason"] = finish
		}
		if finish == "SAFETY" {
			c["safetyRatings"] = []any{map[string]any{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true}}
		}
		return c
	}
	if rep.PromptBlocked != "" {
		resp := map[string]any{"promptFeedback": map[string]any{"blockReason": rep.PromptBlocked}, "usageMetadata": usage, "modelVersion": model}
		if stream {
			startSSE(w)
			sse(w, "", resp, 0)
			return
		}
		writeJSON(w, http.StatusOK, resp)
		return
	}
	if !stream {
		var parts []any
		if rep.Text != "" {
			parts = append(parts, map[string]any{"text": rep.Text})
		}
		parts = append(parts, calls...)
		writeJSON(w, http.StatusOK, map[string]any{
			"candidates": []any{candidate(parts, finish)}, "usageMetadata": usage,
			"modelVersion": model, "responseId": "gemini-fake",
		})
		return
	}
	startSSE(w)
	if rep.FailBeforeFirstToken {
		cut()
	}
	chunks := words(rep.Text, rep.Chunks)
	textDeltas(rep, chunks, func(i int, part string) {
		last := i == len(chunks)-1 && len(calls) == 0
		f := ""
		resp := map[string]any{"modelVersion": model, "responseId": "gemini-fake"}
		if last {
			f = finish
			resp["usageMetadata"] = usage
		} else {
			resp["usageMetadata"] = map[string]any{"promptTokenCount": rep.Usage.Input, "totalTokenCount": rep.Usage.Input}
		}
		resp["candidates"] = []any{candidate([]any{map[string]any{"text": part}}, f)}
		sse(w, "", resp, rep.ChunkDelay)
	}, nil)
	if len(calls) > 0 || len(chunks) == 0 {
		sse(w, "", map[string]any{"candidates": []any{candidate(calls, finish)}, "usageMetadata": usage, "modelVersion": model, "responseId": "gemini-fake"}, rep.ChunkDelay)
	}
}

func (s *Server) geminiEmbed(w http.ResponseWriter, req map[string]any) {
	reqs, _ := asList(req["requests"])
	out := make([]any, len(reqs))
	for i, r := range reqs {
		rm, _ := asMap(r)
		content, _ := asMap(rm["content"])
		parts, _ := asList(content["parts"])
		text := ""
		if len(parts) > 0 {
			pm, _ := asMap(parts[0])
			text, _ = pm["text"].(string)
		}
		out[i] = map[string]any{"values": Vector(text)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"embeddings": out})
}
