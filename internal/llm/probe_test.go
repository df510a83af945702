package llm

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/llm/llmtest"
)

// TestProbeProviders: each provider's models call carries its key the
// provider's way; a wrong key is reported as refused, a dead server as
// unreachable.
func TestProbeProviders(t *testing.T) {
	oa := llmtest.New(t, llmtest.OpenAI, "sk-oa")
	an := llmtest.New(t, llmtest.Anthropic, "sk-an")
	ge := llmtest.New(t, llmtest.Gemini, "sk-ge")
	bad := llmtest.New(t, llmtest.OpenAI, "sk-other")
	dead := llmtest.Start(llmtest.OpenAI, "")
	deadURL := dead.URL
	dead.Close()
	env := map[string]string{"OA": "sk-oa", "AN": "sk-an", "GE": "sk-ge", "BAD": "sk-wrong", "DEAD": "x"}
	cfg := config.DefaultLLM()
	cfg.Providers = []config.LLMProvider{
		{Name: "oa", Kind: config.ProviderOpenAI, BaseURL: oa.URL, APIKeyEnv: "OA"},
		{Name: "an", Kind: config.ProviderAnthropic, BaseURL: an.URL, APIKeyEnv: "AN"},
		{Name: "ge", Kind: config.ProviderGemini, BaseURL: ge.URL, APIKeyEnv: "GE"},
		{Name: "bad", Kind: config.ProviderOpenAI, BaseURL: bad.URL, APIKeyEnv: "BAD"},
		{Name: "dead", Kind: config.ProviderOpenAI, BaseURL: deadURL, APIKeyEnv: "DEAD"},
	}
	g, err := New(cfg, Dirs{Cache: t.TempDir(), State: t.TempDir()}, func(k string) string { return env[k] }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	got := map[string]ProviderProbe{}
	for _, p := range g.ProbeProviders(context.Background()) {
		got[p.Provider] = p
	}
	for _, n := range []string{"oa", "an", "ge"} {
		if p := got[n]; p.Err != nil || p.Status != 200 {
			t.Errorf("%s: %+v", n, p)
		}
	}
	if p := got["bad"]; p.Err == nil || p.Status != 401 {
		t.Errorf("wrong key: %+v", p)
	}
	if p := got["dead"]; p.Err == nil || p.Status != 0 {
		t.Errorf("dead server: %+v", p)
	}
	for _, p := range got {
		if p.Err != nil && (containsAny(p.Err.Error(), "sk-wrong", "sk-oa")) {
			t.Errorf("%s: the error carries a key: %v", p.Provider, p.Err)
		}
	}
}

func containsAny(s string, subs ...string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}
