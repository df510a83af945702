package llm

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/llm/canon"
	"github.com/cortexrt/cortex/internal/llm/llmtest"
	"github.com/google/go-cmp/cmp"
)

func withCache(c *config.LLM) {
	c.Cache.Enabled = true
	c.Cache.TTL = time.Hour
}

func TestCacheHit(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			e := newEnv(t, withCache)
			tok := e.register("p", "a", "an")
			e.anth.Push(llmtest.Reply{Text: "cached words here", ToolCalls: []llmtest.ToolCall{{ID: "t1", Name: "f", Args: `{"x":1}`}}, Usage: llmtest.Usage{Input: 10, Output: 5}})
			first := e.post("/v1/chat/completions", tok, chatBody("an", stream))
			if first.status != http.StatusOK || first.header.Get(HeaderCache) != "miss" {
				t.Fatalf("first: status %d cache %q", first.status, first.header.Get(HeaderCache))
			}
			second := e.post("/v1/chat/completions", tok, chatBody("an", stream))
			if second.header.Get(HeaderCache) != "hit" {
				t.Fatalf("second: cache %q", second.header.Get(HeaderCache))
			}
			if e.anth.Count() != 1 {
				t.Errorf("upstream calls %d, want 1: a hit must not call upstream", e.anth.Count())
			}
			if second.header.Get(HeaderAddedLatency) == "" || second.header.Get(HeaderProvider) != "anthropic" {
				t.Errorf("hit headers %v", second.header)
			}
			if stream {
				if ct := second.header.Get("Content-Type"); ct != "text/event-stream" {
					t.Errorf("a streamed hit must be replayed as a stream, got %q", ct)
				}
				a, b := parseOpenAIStream(t, first.body), parseOpenAIStream(t, second.body)
				if a.text != b.text || a.finish != b.finish || !b.done || cmp.Diff(*a.tools[0], *b.tools[0], cmp.AllowUnexported(struct{ id, name, args string }{})) != "" {
					t.Errorf("replay differs: %+v vs %+v", a, b)
				}
			} else {
				a, b := first.json(t), second.json(t)
				if d := cmp.Diff(a["choices"], b["choices"]); d != "" {
					t.Errorf("replay differs (-first +second):\n%s", d)
				}
				if d := cmp.Diff(a["usage"], b["usage"]); d != "" {
					t.Errorf("usage differs:\n%s", d)
				}
			}
			// A streamed answer serves a plain request and the other way
			// round, and an Anthropic-format request with the same content.
			third := e.post("/v1/chat/completions", tok, chatBody("an", !stream))
			fourth := e.post("/v1/messages", tok, map[string]any{"model": "an", "messages": []any{map[string]any{"role": "user", "content": "hello"}}})
			if third.header.Get(HeaderCache) != "hit" || fourth.header.Get(HeaderCache) != "hit" || e.anth.Count() != 1 {
				t.Errorf("cross-format: %q %q, upstream calls %d", third.header.Get(HeaderCache), fourth.header.Get(HeaderCache), e.anth.Count())
			}
			rep, _ := e.gw.Usage(t.Context(), UsageQuery{})
			if rep.Total.Requests != 4 || rep.Total.CacheHits != 3 || rep.Total.InputTokens != 10 {
				t.Errorf("metered %+v: hits cost no tokens", rep.Total)
			}
		})
	}
}

func TestCacheBypass(t *testing.T) {
	e := newEnv(t, withCache, func(c *config.LLM) {
		off := false
		c.Aliases["nocache"] = config.LLMAlias{Targets: []config.LLMTarget{{Provider: "openai", Model: "gpt-4o-mini"}}, Cache: &off}
	})
	tok := e.register("p", "a", "oa", "nocache")
	cases := []struct {
		name  string
		alias string
		hdr   map[string]string
	}{
		{"header off", "oa", map[string]string{HeaderCache: "off"}},
		{"cache-control", "oa", map[string]string{"Cache-Control": "no-cache"}},
		{"alias opt-out", "nocache", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := e.openai.Count()
			for i := 0; i < 2; i++ {
				a := e.do(http.MethodPost, "/v1/chat/completions", tok, chatBody(tc.alias, false), tc.hdr)
				if a.header.Get(HeaderCache) != "bypass" {
					t.Errorf("cache header %q", a.header.Get(HeaderCache))
				}
			}
			if e.openai.Count() != n+2 {
				t.Errorf("upstream calls %d, want 2", e.openai.Count()-n)
			}
		})
	}
	t.Run("different parameters miss", func(t *testing.T) {
		b1 := chatBody("oa", false)
		b2 := chatBody("oa", false)
		b2["temperature"] = 0.5
		e.post("/v1/chat/completions", tok, b1)
		if a := e.post("/v1/chat/completions", tok, b2); a.header.Get(HeaderCache) != "miss" {
			t.Errorf("a different temperature hit the cache")
		}
	})
	t.Run("errors are not cached", func(t *testing.T) {
		b := chatBody("oa", false)
		b["messages"] = []any{map[string]any{"role": "user", "content": "fails once"}}
		e.openai.Push(llmtest.Reply{Status: 500})
		if a := e.post("/v1/chat/completions", tok, b); a.status != http.StatusBadGateway {
			t.Fatalf("status %d", a.status)
		}
		e.clk.advance(time.Hour)
		if a := e.post("/v1/chat/completions", tok, b); a.status != http.StatusOK || a.header.Get(HeaderCache) != "miss" {
			t.Errorf("status %d cache %q", a.status, a.header.Get(HeaderCache))
		}
	})
}

func TestCacheTTLAndRestart(t *testing.T) {
	e := newEnv(t, withCache)
	tok := e.register("p", "a", "oa")
	e.post("/v1/chat/completions", tok, chatBody("oa", false))
	e.restart()
	if a := e.post("/v1/chat/completions", tok, chatBody("oa", false)); a.header.Get(HeaderCache) != "hit" {
		t.Errorf("after restart: %q; the cache lives on disk", a.header.Get(HeaderCache))
	}
	e.clk.advance(2 * time.Hour)
	if a := e.post("/v1/chat/completions", tok, chatBody("oa", false)); a.header.Get(HeaderCache) != "miss" {
		t.Errorf("after the TTL: %q", a.header.Get(HeaderCache))
	}
	if e.openai.Count() != 2 {
		t.Errorf("upstream calls %d, want 2", e.openai.Count())
	}
	ents, _ := os.ReadDir(e.dirs.Cache)
	for _, ent := range ents {
		info, _ := ent.Info()
		if info.Mode().Perm()&0o077 != 0 {
			t.Errorf("cache file %s mode %v", ent.Name(), info.Mode())
		}
	}
}

func TestDiskCacheSizeCap(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	dir := t.TempDir()
	c, err := openCache(dir, time.Hour, 2000, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	ans := func(i int) *cachedAnswer {
		return &cachedAnswer{Stored: clk.now(), Provider: "p", Response: &canon.Response{ID: fmt.Sprint(i), Parts: []canon.Part{{Type: canon.PartText, Text: strings.Repeat("x", 300)}}}}
	}
	key := func(i int) string { return fmt.Sprintf("%064d", i) }
	for i := 0; i < 10; i++ {
		if err := c.put(key(i), ans(i)); err != nil {
			t.Fatal(err)
		}
		clk.advance(time.Second)
		c.get(key(0)) // kept recently used: survives eviction
	}
	n, size := c.stats()
	if size > 2000 || n == 0 {
		t.Fatalf("%d entries, %d bytes over the 2000 cap", n, size)
	}
	if _, ok := c.get(key(0)); !ok {
		t.Errorf("the recently used entry was evicted")
	}
	if _, ok := c.get(key(1)); ok {
		t.Errorf("the least recently used entry survived")
	}
	if _, ok := c.get(key(9)); !ok {
		t.Errorf("the newest entry was evicted")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != n {
		t.Errorf("%d files on disk, %d indexed", len(ents), n)
	}
	// Reopening rebuilds the index from disk.
	c2, err := openCache(dir, time.Hour, 2000, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	if n2, s2 := c2.stats(); n2 != n || s2 != size {
		t.Errorf("reopened: %d/%d, want %d/%d", n2, s2, n, size)
	}
}
