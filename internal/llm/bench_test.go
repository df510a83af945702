package llm

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/llm/llmtest"
)

// BenchmarkStream measures one streamed chat completion of 20 deltas from
// an instant fake upstream, directly and through the gateway, so the
// difference is the gateway's cost per stream. Latency under concurrency
// is measured by the bench/llm harness.
func BenchmarkStream(b *testing.B) {
	words := make([]string, 20)
	for i := range words {
		words[i] = "word"
	}
	reply := llmtest.Reply{Text: strings.Join(words, " "), Usage: llmtest.Usage{Input: 10, Output: 20}}
	fake := llmtest.Start(llmtest.OpenAI, keyOpenAI)
	defer fake.Close()
	fake.SetRecord(false)
	fake.SetDefault(reply)
	dir := b.TempDir()
	cfg := config.DefaultLLM()
	cfg.Cache.Enabled = false
	cfg.Providers = []config.LLMProvider{{Name: "openai", Kind: config.ProviderOpenAI, BaseURL: fake.URL, APIKeyEnv: "K"}}
	cfg.Aliases = map[string]config.LLMAlias{"fast": {Targets: []config.LLMTarget{{Provider: "openai", Model: "gpt-4o-mini"}}}}
	gw, err := newGateway(cfg, Dirs{State: dir}, nil, func(string) string { return keyOpenAI }, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	defer gw.Close()
	tok, _ := gw.RegisterAgent("p", "a", []string{"fast"}, nil)
	hs := httptest.NewServer(gw.AgentHandler())
	defer hs.Close()
	srv := hs.URL
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	run := func(b *testing.B, url, key, model string) {
		body := []byte(`{"model":"` + model + `","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.HasSuffix(out, []byte("data: [DONE]\n\n")) {
				b.Fatalf("%d %s", resp.StatusCode, out)
			}
		}
	}
	b.Run("direct", func(b *testing.B) { run(b, fake.URL+"/chat/completions", keyOpenAI, "gpt-4o-mini") })
	b.Run("gateway", func(b *testing.B) { run(b, srv+"/v1/chat/completions", tok, "fast") })
}
