package llm

import (
	"errors"
	"testing"

	"github.com/cortexrt/cortex/internal/llm/anthropic"
	"github.com/cortexrt/cortex/internal/llm/canon"
	"github.com/cortexrt/cortex/internal/llm/gemini"
	"github.com/cortexrt/cortex/internal/llm/openai"
)

// FuzzParseRequests feeds arbitrary bodies to both ingress parsers and to
// every connector's encoder: they must return an error or a request, never
// panic, and what parses must encode for every provider family or fail
// with a clean error.
func FuzzParseRequests(f *testing.F) {
	for _, b := range []map[string]any{openAIConversation("m", false), anthropicConversation("m", true)} {
		f.Add(mustJSON(b))
	}
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}`))
	f.Add([]byte(`{"model":"m","messages":[{"role":"tool","tool_call_id":"x","content":"y"}],"stop":"s","n":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, parse := range []func([]byte) (*canon.Request, error){openai.ParseChat, func(b []byte) (*canon.Request, error) { return anthropic.Parse(b, nil) }} {
			req, err := parse(body)
			if err != nil {
				var ir *canon.InvalidRequest
				if !errors.As(err, &ir) {
					t.Fatalf("parse error of the wrong type: %T %v", err, err)
				}
				continue
			}
			p := &canon.Provider{Name: "x"}
			_, _ = openai.New(p, false).Encode("m", req)
			_, _ = anthropic.Encode("m", req, 10)
			_, _ = gemini.New(p).Encode(req)
			_ = cacheKey(&route{}, req)
		}
		_, _, _ = openai.ParseEmbed(body)
	})
}
