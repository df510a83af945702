package llm

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/events"
	"github.com/cortexrt/cortex/internal/llm/llmtest"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/google/go-cmp/cmp"
)

func TestAuth(t *testing.T) {
	e := newEnv(t)
	tokA := e.register("p", "a", "oa")
	tokB := e.register("p", "b", "an")
	// The egress gateway marks connections from b's sandbox.
	fromB := httptest.NewUnstartedServer(e.gw.AgentHandler())
	fromB.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context { return WithAgent(ctx, "p", "b") }
	fromB.Start()
	defer fromB.Close()

	cases := []struct {
		name   string
		url    string
		path   string
		token  string
		model  string
		status int
		want   string
	}{
		{"no token", e.srv.URL, "/v1/chat/completions", "", "oa", 401, "missing API key"},
		{"unknown token", e.srv.URL, "/v1/chat/completions", "cxk_not-a-token", "oa", 401, "invalid API key"},
		{"provider key is not a token", e.srv.URL, "/v1/chat/completions", keyOpenAI, "oa", 401, "invalid API key"},
		{"own token", e.srv.URL, "/v1/chat/completions", tokA, "oa", 200, ""},
		{"alias not granted", e.srv.URL, "/v1/chat/completions", tokA, "an", 403, "not in this agent's llm.access"},
		{"alias not granted anthropic", e.srv.URL, "/v1/messages", tokA, "an", 403, "permission_error"},
		{"b's token from b", fromB.URL, "/v1/chat/completions", tokB, "an", 200, ""},
		{"a's token from b's sandbox", fromB.URL, "/v1/chat/completions", tokA, "oa", 401, "belongs to another agent"},
		{"a's token from b's sandbox anthropic", fromB.URL, "/v1/messages", tokA, "oa", 401, "authentication_error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := chatBody(tc.model, false)
			if tc.path == "/v1/messages" {
				body["max_tokens"] = 5
			}
			srv := e.srv
			e.srv = &httptest.Server{URL: tc.url}
			a := e.post(tc.path, tc.token, body)
			e.srv = srv
			if a.status != tc.status || !strings.Contains(string(a.body), tc.want) {
				t.Errorf("status %d body %s; want %d containing %q", a.status, a.body, tc.status, tc.want)
			}
		})
	}

	t.Run("models lists the grant", func(t *testing.T) {
		a := e.do(http.MethodGet, "/v1/models", tokA, nil, nil)
		data := a.json(t)["data"].([]any)
		if len(data) != 1 || data[0].(map[string]any)["id"] != "oa" {
			t.Errorf("models %s", a.body)
		}
		if a := e.do(http.MethodGet, "/v1/models/an", tokA, nil, nil); a.status != 404 {
			t.Errorf("ungranted model: %d", a.status)
		}
	})

	t.Run("register is idempotent and survives restart", func(t *testing.T) {
		again, err := e.gw.RegisterAgent("p", "a", []string{"oa", "gm"}, nil)
		if err != nil || again != tokA {
			t.Fatalf("re-register: %v, same token %v", err, again == tokA)
		}
		e.restart()
		if a := e.post("/v1/chat/completions", tokA, chatBody("gm", false)); a.status != 200 {
			t.Errorf("after restart: %d %s", a.status, a.body)
		}
	})
	t.Run("unregister revokes", func(t *testing.T) {
		e.gw.UnregisterAgent("p", "a")
		if a := e.post("/v1/chat/completions", tokA, chatBody("oa", false)); a.status != 401 {
			t.Errorf("revoked token: %d", a.status)
		}
		e.restart()
		if a := e.post("/v1/chat/completions", tokA, chatBody("oa", false)); a.status != 401 {
			t.Errorf("revoked token after restart: %d", a.status)
		}
	})
	t.Run("tokens are 256-bit and distinct", func(t *testing.T) {
		t1 := e.register("q", "x", "oa")
		t2 := e.register("q", "y", "oa")
		if t1 == t2 || len(strings.TrimPrefix(t1, tokenPrefix)) != 43 {
			t.Errorf("tokens %q %q", t1, t2)
		}
	})
	t.Run("unknown alias refused at registration", func(t *testing.T) {
		_, err := e.gw.RegisterAgent("p", "c", []string{"oa", "gpt-5"}, nil)
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "gpt-5") || !strings.Contains(errdefs.HintOf(err), "oa") {
			t.Errorf("err %v hint %q", err, errdefs.HintOf(err))
		}
	})
}

func TestBudgets(t *testing.T) {
	reply := llmtest.Reply{Text: "ok", Usage: llmtest.Usage{Input: 40, Output: 10}}
	cases := []struct {
		name     string
		agent    *manifest.LLMBudget
		project  *manifest.LLMBudget
		allowed  int
		wantText string
	}{
		{"tokens per day", &manifest.LLMBudget{TokensPerDay: 120}, nil, 3, "tokens_per_day"},
		{"dollars per day", &manifest.LLMBudget{DollarsPerDay: 0.00002}, nil, 2, "dollars_per_day"},
		{"requests per minute", &manifest.LLMBudget{RequestsPerMinute: 2}, nil, 2, "requests_per_minute"},
		{"project tokens", nil, &manifest.LLMBudget{TokensPerDay: 60}, 2, "project p"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.openai.SetDefault(reply)
			tok, err := e.gw.RegisterAgent("p", "a", []string{"oa"}, tc.agent)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.gw.SetProjectBudget("p", tc.project); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < tc.allowed; i++ {
				if a := e.post("/v1/chat/completions", tok, chatBody("oa", false)); a.status != 200 {
					t.Fatalf("request %d: %d %s", i, a.status, a.body)
				}
			}
			a := e.post("/v1/chat/completions", tok, chatBody("oa", false))
			if a.status != http.StatusTooManyRequests || !strings.Contains(string(a.body), tc.wantText) || a.header.Get("Retry-After") == "" {
				t.Fatalf("over budget: %d %s (Retry-After %q)", a.status, a.body, a.header.Get("Retry-After"))
			}
			if e.openai.Count() != tc.allowed {
				t.Errorf("upstream called %d times, want %d", e.openai.Count(), tc.allowed)
			}
			// Anthropic clients get their own error shape.
			a = e.post("/v1/messages", tok, map[string]any{"model": "oa", "max_tokens": 5, "messages": []any{map[string]any{"role": "user", "content": "x"}}})
			if a.status != 429 || a.json(t)["error"].(map[string]any)["type"] != "rate_limit_error" {
				t.Errorf("anthropic-format refusal %d %s", a.status, a.body)
			}
			if tc.agent != nil && tc.agent.RequestsPerMinute > 0 {
				e.clk.advance(time.Minute)
			} else {
				// Budgets survive a restart: usage is persisted.
				e.restart()
				if a := e.post("/v1/chat/completions", tok, chatBody("oa", false)); a.status != 429 {
					t.Errorf("after restart: %d", a.status)
				}
				e.clk.advance(24 * time.Hour)
			}
			if a := e.post("/v1/chat/completions", tok, chatBody("oa", false)); a.status != 200 {
				t.Errorf("after the window: %d %s", a.status, a.body)
			}
		})
	}
}

func TestUsagePersisted(t *testing.T) {
	e := newEnv(t)
	tok := e.register("p", "a", "oa", "an")
	e.openai.SetDefault(llmtest.Reply{Text: "x", Usage: llmtest.Usage{Input: 1000, Output: 500, CacheRead: 200}})
	e.anth.SetDefault(llmtest.Reply{Text: "y", Usage: llmtest.Usage{Input: 10, Output: 5, CacheRead: 20, CacheWrite: 30}})
	e.post("/v1/chat/completions", tok, chatBody("oa", false))
	e.post("/v1/chat/completions", tok, chatBody("oa", true))
	e.post("/v1/chat/completions", tok, chatBody("an", false))
	e.openai.Push(llmtest.Reply{Status: 500})
	e.post("/v1/chat/completions", tok, chatBody("oa", false))
	e.restart()
	rep, err := e.gw.Usage(t.Context(), UsageQuery{GroupBy: []string{"agent", "provider", "model"}})
	if err != nil {
		t.Fatal(err)
	}
	byModel := map[string]api.LLMUsageRow{}
	for _, r := range rep.Rows {
		byModel[r.Model] = r
	}
	oa := byModel["gpt-4o-mini"]
	if oa.Requests != 2 || oa.InputTokens != 2000 || oa.OutputTokens != 1000 || oa.CacheReadTokens != 400 {
		t.Errorf("openai row %+v", oa)
	}
	// gpt-4o-mini: $0.15 in, $0.075 cached in, $0.60 out per million.
	wantCost := 2 * (800*0.15 + 200*0.075 + 500*0.60) / 1e6
	if d := oa.CostUSD - wantCost; d > 1e-12 || d < -1e-12 {
		t.Errorf("cost %v, want %v", oa.CostUSD, wantCost)
	}
	an := byModel["claude-3-5-haiku-latest"]
	if an.InputTokens != 60 || an.CacheReadTokens != 20 || an.CacheWriteTokens != 30 {
		t.Errorf("anthropic row %+v: cache reads and writes count as input", an)
	}
	if failed := byModel[""]; failed.Errors != 1 {
		t.Errorf("the failed request was not metered: %+v", rep.Rows)
	}
	if rep.Total.Requests != 4 {
		t.Errorf("total %+v", rep.Total)
	}
	info, err := os.Stat(filepath.Join(e.dirs.State, "llm.db"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("state file: %v %v", info.Mode(), err)
	}
}

// No provider key ever reaches an agent: not in answers (even when an
// upstream echoes the key in an error), not in Env, not in the logs.
func TestProviderKeysNeverLeak(t *testing.T) {
	e := newEnv(t, func(c *config.LLM) { c.Routing.Retries = 1 })
	tok := e.register("p", "a", "oa", "an", "gm", "fb")
	echo := func(status int) llmtest.Reply {
		return llmtest.Reply{Status: status, ErrorMessage: "bad request with key {key} inside"}
	}
	e.openai.Push(echo(400))
	e.post("/v1/chat/completions", tok, chatBody("oa", false))
	e.openai.Push(echo(500), echo(500))
	e.anth.Push(echo(500), echo(500))
	e.post("/v1/chat/completions", tok, chatBody("fb", false))
	e.gemini.Push(echo(400))
	e.post("/v1/messages", tok, map[string]any{"model": "gm", "max_tokens": 5, "messages": []any{map[string]any{"role": "user", "content": "x"}}})
	e.openai.Push(echo(500), echo(500))
	e.clk.advance(time.Hour)
	e.post("/v1/chat/completions", tok, chatBody("oa", true))
	e.clk.advance(time.Hour)
	for _, b := range []map[string]any{chatBody("oa", false), chatBody("an", true), chatBody("gm", false)} {
		e.post("/v1/chat/completions", tok, b)
	}
	// A provider with a wrong key: the upstream's 401 message echoes what
	// it got.
	bad := newEnv(t, func(c *config.LLM) {
		c.Providers[0].APIKeyFile = writeKey(t, t.TempDir(), "wrong", "sk-wrong-KEY-zzz", 0o600)
	})
	btok := bad.register("p", "a", "oa")
	if a := bad.post("/v1/chat/completions", btok, chatBody("oa", false)); a.status != http.StatusBadGateway || !strings.Contains(string(a.body), "credentials") {
		t.Errorf("wrong key: %d %s", a.status, a.body)
	}
	rep := e.do(http.MethodGet, "/v1/models", tok, nil, nil)
	_ = rep

	seenMu.Lock()
	answers := append([]answer(nil), seenAnswers...)
	seenMu.Unlock()
	if len(answers) < 8 {
		t.Fatalf("only %d answers recorded", len(answers))
	}
	sawEcho := false
	for _, a := range answers {
		text := string(a.body)
		for k, vs := range a.header {
			text += k + ": " + strings.Join(vs, ",") + "\n"
		}
		for _, key := range append(allKeys, "sk-wrong-KEY-zzz") {
			if strings.Contains(text, key) {
				t.Errorf("provider key %q in an answer: %s", key, text)
			}
		}
		sawEcho = sawEcho || strings.Contains(text, "[redacted]")
	}
	if !sawEcho {
		t.Errorf("no answer carried a scrubbed upstream message; the test did not exercise scrubbing")
	}
	env := strings.Join(Env(tok), "\n")
	for _, key := range allKeys {
		if strings.Contains(env, key) {
			t.Errorf("key in Env")
		}
	}
	if !strings.Contains(env, "OPENAI_API_KEY="+tok) || !strings.Contains(env, "ANTHROPIC_API_KEY="+tok) ||
		!strings.Contains(env, "OPENAI_BASE_URL=http://llm.cortex.internal/v1") || !strings.Contains(env, "ANTHROPIC_BASE_URL=http://llm.cortex.internal") {
		t.Errorf("Env %q", env)
	}
	for _, logs := range []string{e.logs.String(), bad.logs.String()} {
		for _, key := range append(allKeys, "sk-wrong-KEY-zzz") {
			if strings.Contains(logs, key) {
				t.Errorf("key %q in the logs", key)
			}
		}
	}
}

func TestKeySources(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name    string
		pc      config.LLMProvider
		env     map[string]string
		wantErr string
		wantCat errdefs.Category
	}{
		{"0600 file", config.LLMProvider{Name: "x", APIKeyFile: writeKey(t, dir, "ok", "k1", 0o600)}, nil, "", ""},
		{"0400 file", config.LLMProvider{Name: "x", APIKeyFile: writeKey(t, dir, "ro", "k1", 0o400)}, nil, "", ""},
		{"0644 file", config.LLMProvider{Name: "x", APIKeyFile: writeKey(t, dir, "world", "k1", 0o644)}, nil, "mode 0644", errdefs.PermissionDenied},
		{"0640 file", config.LLMProvider{Name: "x", APIKeyFile: writeKey(t, dir, "group", "k1", 0o640)}, nil, "group or others", errdefs.PermissionDenied},
		{"missing file", config.LLMProvider{Name: "x", APIKeyFile: filepath.Join(dir, "nope")}, nil, "key file", errdefs.FailedPrecondition},
		{"empty file", config.LLMProvider{Name: "x", APIKeyFile: writeKey(t, dir, "empty", "", 0o600)}, nil, "empty", errdefs.FailedPrecondition},
		{"env", config.LLMProvider{Name: "x", APIKeyEnv: "K"}, map[string]string{"K": "k2"}, "", ""},
		{"env unset", config.LLMProvider{Name: "x", APIKeyEnv: "K"}, nil, "K is empty or unset", errdefs.FailedPrecondition},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, err := loadKey(tc.pc, func(n string) string { return tc.env[n] })
			if tc.wantErr == "" {
				if err != nil || k.Empty() {
					t.Fatalf("err %v", err)
				}
				if k.String() != "[redacted]" {
					t.Errorf("a key prints as %q", k.String())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || errdefs.CategoryOf(err) != tc.wantCat {
				t.Fatalf("err %v (category %v), want %q (%v)", err, errdefs.CategoryOf(err), tc.wantErr, tc.wantCat)
			}
			if strings.Contains(tc.name, "0644") && !strings.Contains(errdefs.HintOf(err), "chmod 600") {
				t.Errorf("hint %q", errdefs.HintOf(err))
			}
		})
	}
	t.Run("New refuses a world-readable key file", func(t *testing.T) {
		cfg := config.DefaultLLM()
		cfg.Providers = []config.LLMProvider{{Name: "openai", Kind: config.ProviderOpenAI, APIKeyFile: writeKey(t, dir, "open", "sk-x", 0o644)}}
		_, err := New(cfg, Dirs{State: t.TempDir(), Cache: t.TempDir()}, func(string) string { return "" }, nil)
		if err == nil || !strings.Contains(err.Error(), "must not be readable") {
			t.Fatalf("err %v", err)
		}
	})
}

// TestRefusalEvents: an alias outside the grant and a budget refusal are
// each one llm.denied event naming the agent, the alias and why; an
// allowed request is none.
func TestRefusalEvents(t *testing.T) {
	e := newEnv(t)
	ev := events.New()
	denied := ev.Subscribe("test", 10, events.OfType(events.LLMDenied))
	e.gw.SetEvents(ev)
	e.openai.SetDefault(llmtest.Reply{Text: "ok", Usage: llmtest.Usage{Input: 40, Output: 10}})
	tok, err := e.gw.RegisterAgent("p", "a", []string{"oa"}, &manifest.LLMBudget{RequestsPerMinute: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []int{200, 403, 429} {
		model := "oa"
		if want == 403 {
			model = "an"
		}
		if a := e.post("/v1/chat/completions", tok, chatBody(model, false)); a.status != want {
			t.Fatalf("%s: %d %s, want %d", model, a.status, a.body, want)
		}
	}
	ev.Close()
	var got []string
	for e := range denied.C {
		d := e.Detail.(events.LLMDeniedDetail)
		got = append(got, e.Project+"/"+e.Agent+" "+d.Alias+" "+d.Reason)
	}
	if diff := cmp.Diff([]string{"p/a an alias", "p/a oa budget"}, got); diff != "" {
		t.Errorf("llm.denied events (-want +got):\n%s", diff)
	}
}
