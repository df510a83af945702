package llm

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/llm/canon"
	"github.com/cortexrt/cortex/internal/llm/llmtest"
	"github.com/google/go-cmp/cmp"
)

func chatBody(model string, stream bool) map[string]any {
	return map[string]any{"model": model, "stream": stream, "messages": []any{map[string]any{"role": "user", "content": "hello"}}}
}

func TestFallback(t *testing.T) {
	cases := []struct {
		name   string
		stream bool
		first  llmtest.Reply
	}{
		{"500", false, llmtest.Reply{Status: 500}},
		{"500 stream", true, llmtest.Reply{Status: 500}},
		{"503 with retry-after", false, llmtest.Reply{Status: 503, RetryAfter: "1"}},
		{"stream cut before first token", true, llmtest.Reply{FailBeforeFirstToken: true, Text: "never sent"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tok := e.register("p", "a", "fb")
			e.openai.Push(tc.first)
			e.anth.Push(llmtest.Reply{Text: "from the fallback", Usage: llmtest.Usage{Input: 3, Output: 3}})
			a := e.post("/v1/chat/completions", tok, chatBody("fb", tc.stream))
			if a.status != http.StatusOK {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			text := ""
			if tc.stream {
				res := parseOpenAIStream(t, a.body)
				text = res.text
				if !res.done || res.errorMsg != "" {
					t.Errorf("stream done=%v error=%q", res.done, res.errorMsg)
				}
			} else {
				text = a.json(t)["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"].(string)
			}
			if text != "from the fallback" {
				t.Errorf("text %q", text)
			}
			if a.header.Get(HeaderProvider) != "anthropic" || a.header.Get(HeaderAttempts) != "2" {
				t.Errorf("provider %q attempts %q", a.header.Get(HeaderProvider), a.header.Get(HeaderAttempts))
			}
			if e.openai.Count() != 1 || e.anth.Count() != 1 {
				t.Errorf("upstream calls openai=%d anthropic=%d, want 1 and 1", e.openai.Count(), e.anth.Count())
			}
		})
	}
}

// The other direction: an Anthropic stream cut before its first token
// falls back to Gemini.
func TestFallbackFromAnthropicStream(t *testing.T) {
	e := newEnv(t, func(c *config.LLM) {
		c.Aliases["ag"] = config.LLMAlias{Targets: []config.LLMTarget{{Provider: "anthropic", Model: "claude-3-5-haiku-latest"}, {Provider: "gemini", Model: "gemini-2.0-flash"}}}
	})
	tok := e.register("p", "a", "ag")
	e.anth.Push(llmtest.Reply{FailBeforeFirstToken: true, Text: "never"})
	e.gemini.Push(llmtest.Reply{Text: "gemini here"})
	a := e.post("/v1/messages", tok, map[string]any{"model": "ag", "max_tokens": 5, "stream": true, "messages": []any{map[string]any{"role": "user", "content": "hi"}}})
	res := parseAnthropicStream(t, a.body)
	if len(res.blocks) != 1 || res.blocks[0]["text"] != "gemini here" || res.stop != "end_turn" {
		t.Errorf("blocks %v stop %q", res.blocks, res.stop)
	}
	if e.anth.Count() != 1 || e.gemini.Count() != 1 {
		t.Errorf("counts anthropic=%d gemini=%d", e.anth.Count(), e.gemini.Count())
	}
}

// Once tokens went out, the gateway is committed: a later failure is
// relayed as an error in the stream, never papered over by another target.
func TestNoFallbackAfterFirstToken(t *testing.T) {
	t.Run("openai cut", func(t *testing.T) {
		e := newEnv(t)
		tok := e.register("p", "a", "fb")
		e.openai.Push(llmtest.Reply{Text: "one two three four", FailAfterChunks: 2})
		a := e.post("/v1/chat/completions", tok, chatBody("fb", true))
		res := parseOpenAIStream(t, a.body)
		if res.text != "one two" {
			t.Errorf("relayed text %q, want the two chunks sent", res.text)
		}
		if res.done || res.errorMsg == "" {
			t.Errorf("done=%v error=%q: a broken stream must end with an error event, not [DONE]", res.done, res.errorMsg)
		}
		if e.anth.Count() != 0 {
			t.Errorf("fallback target was called %d times after tokens were sent", e.anth.Count())
		}
		if got := usageTotal(t, e, "a"); got.Errors != 1 || got.Requests != 1 {
			t.Errorf("metered %+v", got)
		}
	})
	t.Run("anthropic error event", func(t *testing.T) {
		e := newEnv(t, func(c *config.LLM) {
			c.Aliases["ao"] = config.LLMAlias{Targets: []config.LLMTarget{{Provider: "anthropic", Model: "claude-3-5-haiku-latest"}, {Provider: "openai", Model: "gpt-4o-mini"}}}
		})
		tok := e.register("p", "a", "ao")
		e.anth.Push(llmtest.Reply{Text: "one two three", ErrorEventAfterChunks: 1})
		a := e.post("/v1/messages", tok, map[string]any{"model": "ao", "max_tokens": 5, "stream": true, "messages": []any{map[string]any{"role": "user", "content": "hi"}}})
		res := parseAnthropicStream(t, a.body)
		if res.err == "" || res.types[len(res.types)-1] != "error" {
			t.Errorf("events %v: want a final error event", res.types)
		}
		if len(res.blocks) != 1 || res.blocks[0]["text"] != "one" {
			t.Errorf("blocks %v", res.blocks)
		}
		if e.openai.Count() != 0 {
			t.Errorf("fallback called after tokens")
		}
	})
}

func TestCooldown(t *testing.T) {
	e := newEnv(t, func(c *config.LLM) { c.Routing.Cooldown = 30 * time.Second })
	tok := e.register("p", "a", "fb", "oa")
	e.openai.Push(llmtest.Reply{Status: 500})
	for i := 0; i < 3; i++ {
		a := e.post("/v1/chat/completions", tok, chatBody("fb", false))
		if a.status != http.StatusOK || a.header.Get(HeaderProvider) != "anthropic" {
			t.Fatalf("request %d: status %d provider %q", i, a.status, a.header.Get(HeaderProvider))
		}
	}
	if e.openai.Count() != 1 || e.anth.Count() != 3 {
		t.Fatalf("during cooldown: openai=%d anthropic=%d, want 1 and 3", e.openai.Count(), e.anth.Count())
	}
	models := e.gw.Models()
	var cooling *time.Time
	for _, al := range models.Aliases {
		if al.Name == "fb" {
			cooling = al.Targets[0].CoolingDownUntil
		}
	}
	if cooling == nil {
		t.Errorf("models report does not show the cooldown")
	}
	e.clk.advance(31 * time.Second)
	a := e.post("/v1/chat/completions", tok, chatBody("fb", false))
	if a.header.Get(HeaderProvider) != "openai" || e.openai.Count() != 2 {
		t.Errorf("after cooldown: provider %q openai calls %d", a.header.Get(HeaderProvider), e.openai.Count())
	}

	// A single-target alias whose target is cooling down still tries it:
	// better a probe than a certain failure.
	e.openai.Push(llmtest.Reply{Status: 500})
	if a := e.post("/v1/chat/completions", tok, chatBody("oa", false)); a.status != http.StatusBadGateway {
		t.Errorf("status %d, want 502", a.status)
	}
	n := e.openai.Count()
	if a := e.post("/v1/chat/completions", tok, chatBody("oa", false)); a.status != http.StatusOK || e.openai.Count() != n+1 {
		t.Errorf("last-resort probe: status %d, calls %d", a.status, e.openai.Count()-n)
	}
}

func TestRetries(t *testing.T) {
	e := newEnv(t, func(c *config.LLM) { c.Routing.Retries = 2 })
	tok := e.register("p", "a", "fb")
	e.openai.Push(llmtest.Reply{Status: 500}, llmtest.Reply{Status: 429, RetryAfter: "0"})
	a := e.post("/v1/chat/completions", tok, chatBody("fb", false))
	if a.status != http.StatusOK || a.header.Get(HeaderProvider) != "openai" || a.header.Get(HeaderAttempts) != "3" {
		t.Errorf("status %d provider %q attempts %q", a.status, a.header.Get(HeaderProvider), a.header.Get(HeaderAttempts))
	}
	if e.openai.Count() != 3 || e.anth.Count() != 0 {
		t.Errorf("openai=%d anthropic=%d", e.openai.Count(), e.anth.Count())
	}
}

// A request the upstream calls invalid goes back to the caller; another
// target would refuse it too.
func TestClientErrorNoFallback(t *testing.T) {
	e := newEnv(t)
	tok := e.register("p", "a", "fb")
	e.openai.Push(llmtest.Reply{Status: 400, ErrorMessage: "context length exceeded"})
	a := e.post("/v1/chat/completions", tok, chatBody("fb", false))
	if a.status != http.StatusBadRequest || !strings.Contains(string(a.body), "context length exceeded") {
		t.Errorf("status %d body %s", a.status, a.body)
	}
	if e.anth.Count() != 0 {
		t.Errorf("fell back on a client error")
	}
}

func TestTargetTimeout(t *testing.T) {
	e := newEnv(t, func(c *config.LLM) {
		a := c.Aliases["fb"]
		a.Targets[0].Timeout = 300 * time.Millisecond
		c.Aliases["fb"] = a
	})
	tok := e.register("p", "a", "fb")
	for _, stream := range []bool{false, true} {
		e.openai.Push(llmtest.Reply{Delay: 5 * time.Second})
		start := time.Now()
		a := e.post("/v1/chat/completions", tok, chatBody("fb", stream))
		if a.status != http.StatusOK || a.header.Get(HeaderProvider) != "anthropic" {
			t.Errorf("stream=%v: status %d provider %q", stream, a.status, a.header.Get(HeaderProvider))
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("stream=%v: took %v; the target timeout did not apply", stream, d)
		}
		e.clk.advance(time.Hour) // end the cooldown
	}
}

func TestTimeoutStatus(t *testing.T) {
	e := newEnv(t, func(c *config.LLM) { c.Routing.Timeout = 200 * time.Millisecond })
	tok := e.register("p", "a", "oa")
	e.openai.Push(llmtest.Reply{Delay: 3 * time.Second})
	a := e.post("/v1/chat/completions", tok, chatBody("oa", false))
	if a.status != http.StatusGatewayTimeout || !strings.Contains(string(a.body), "timed out") {
		t.Errorf("status %d body %s", a.status, a.body)
	}
}

func TestRouteOrder(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	mk := func(name string, weight float64, price *config.Price) *target {
		t := &target{prov: &canon.Provider{Name: name}, model: "m", weight: weight, health: &health{}}
		if price != nil {
			t.price, t.priced = *price, true
		}
		return t
	}
	names := func(ts []*target) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.prov.Name)
		}
		return out
	}
	fixed := func(x float64) func() float64 { return func() float64 { return x } }
	t.Run("ordered skips cooling", func(t *testing.T) {
		a, b, c := mk("a", 0, nil), mk("b", 0, nil), mk("c", 0, nil)
		b.health.failure(now, time.Minute)
		rt := &route{strategy: config.StrategyOrdered, targets: []*target{a, b, c}}
		if d := cmp.Diff([]string{"a", "c"}, names(rt.order(now, fixed(0)))); d != "" {
			t.Error(d)
		}
		if d := cmp.Diff([]string{"a", "b", "c"}, names(rt.order(now.Add(2*time.Minute), fixed(0)))); d != "" {
			t.Error(d)
		}
	})
	t.Run("all cooling: earliest end", func(t *testing.T) {
		a, b := mk("a", 0, nil), mk("b", 0, nil)
		a.health.failure(now, 2*time.Minute)
		b.health.failure(now, time.Minute)
		rt := &route{strategy: config.StrategyOrdered, targets: []*target{a, b}}
		if d := cmp.Diff([]string{"b"}, names(rt.order(now, fixed(0)))); d != "" {
			t.Error(d)
		}
	})
	t.Run("weighted", func(t *testing.T) {
		rt := &route{strategy: config.StrategyWeighted, targets: []*target{mk("a", 1, nil), mk("b", 3, nil)}}
		if d := cmp.Diff([]string{"a", "b"}, names(rt.order(now, fixed(0.2)))); d != "" {
			t.Error(d)
		}
		if d := cmp.Diff([]string{"b", "a"}, names(rt.order(now, fixed(0.5)))); d != "" {
			t.Error(d)
		}
	})
	t.Run("lowest cost", func(t *testing.T) {
		rt := &route{strategy: config.StrategyLowestCost, targets: []*target{mk("unpriced", 0, nil), mk("dear", 0, &config.Price{Input: 3, Output: 15}), mk("cheap", 0, &config.Price{Input: 0.1, Output: 0.4})}}
		if d := cmp.Diff([]string{"cheap", "dear", "unpriced"}, names(rt.order(now, fixed(0)))); d != "" {
			t.Error(d)
		}
	})
	t.Run("lowest latency", func(t *testing.T) {
		slow, fast, unknown := mk("slow", 0, nil), mk("fast", 0, nil), mk("unknown", 0, nil)
		slow.health.success(300 * time.Millisecond)
		fast.health.success(20 * time.Millisecond)
		rt := &route{strategy: config.StrategyLowestLatency, targets: []*target{slow, fast, unknown}}
		if d := cmp.Diff([]string{"unknown", "fast", "slow"}, names(rt.order(now, fixed(0)))); d != "" {
			t.Error(d)
		}
	})
}

// The weighted strategy spreads first attempts by weight.
func TestWeightedSpread(t *testing.T) {
	e := newEnv(t, func(c *config.LLM) {
		c.Aliases["w"] = config.LLMAlias{Targets: []config.LLMTarget{{Provider: "openai", Model: "gpt-4o-mini", Weight: 1}, {Provider: "local", Model: "llama3.2", Weight: 3}}}
	})
	tok := e.register("p", "a", "w")
	for i := 0; i < 200; i++ {
		if a := e.post("/v1/chat/completions", tok, chatBody("w", false)); a.status != http.StatusOK {
			t.Fatalf("status %d", a.status)
		}
	}
	o, l := e.openai.Count(), e.local.Count()
	if o+l != 200 || o < 20 || o > 85 {
		t.Errorf("openai %d local %d: want about 50/150", o, l)
	}
}

func TestStreamIdleTimeout(t *testing.T) {
	e := newEnv(t, func(c *config.LLM) { c.Routing.StreamIdleTimeout = 150 * time.Millisecond })
	tok := e.register("p", "a", "fb")
	e.openai.Push(llmtest.Reply{Text: "slow words here", ChunkDelay: 400 * time.Millisecond})
	a := e.post("/v1/chat/completions", tok, chatBody("fb", true))
	res := parseOpenAIStream(t, a.body)
	if res.text != "slow" || !strings.Contains(res.errorMsg, "idle timeout") || res.done {
		t.Errorf("text %q error %q done %v", res.text, res.errorMsg, res.done)
	}
	if e.anth.Count() != 0 {
		t.Errorf("fell back after the first token")
	}
}
