package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/llm/canon"
	"github.com/cortexrt/cortex/internal/llm/llmtest"
)

// Provider keys of the test environment. Tests assert none of them ever
// reaches a client.
const (
	keyOpenAI    = "sk-openai-TESTKEY-0123456789"
	keyAnthropic = "sk-ant-TESTKEY-abcdefghij"
	keyGemini    = "AIza-TESTKEY-gemini-xyz"
)

var allKeys = []string{keyOpenAI, keyAnthropic, keyGemini}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a gateway wired to four fake upstreams, served on loopback.
type env struct {
	t        *testing.T
	gw       *Gateway
	srv      *httptest.Server
	openai   *llmtest.Server
	anth     *llmtest.Server
	gemini   *llmtest.Server
	local    *llmtest.Server
	dirs     Dirs
	cfg      config.LLM
	clk      *clock
	logs     *syncBuffer
	keyFiles string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func writeKey(t *testing.T, dir, name, key string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(key+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// newEnv builds the environment. Aliases: oa (openai), an (anthropic), gm
// (gemini), local (openai-compatible), fb (openai then anthropic). The
// cache is off and retries are 0 unless mod changes them.
func newEnv(t *testing.T, mod ...func(*config.LLM)) *env {
	t.Helper()
	e := &env{t: t, clk: &clock{t: time.Date(2030, 1, 2, 12, 0, 0, 0, time.UTC)}, logs: &syncBuffer{}}
	e.openai = llmtest.New(t, llmtest.OpenAI, keyOpenAI)
	e.anth = llmtest.New(t, llmtest.Anthropic, keyAnthropic)
	e.gemini = llmtest.New(t, llmtest.Gemini, keyGemini)
	e.local = llmtest.New(t, llmtest.OpenAI, "")
	keys := t.TempDir()
	e.keyFiles = keys
	root := t.TempDir()
	e.dirs = Dirs{Cache: filepath.Join(root, "cache"), State: filepath.Join(root, "state")}
	cfg := config.DefaultLLM()
	cfg.Providers = []config.LLMProvider{
		{Name: "openai", Kind: config.ProviderOpenAI, BaseURL: e.openai.URL, APIKeyFile: writeKey(t, keys, "openai", keyOpenAI, 0o600)},
		{Name: "anthropic", Kind: config.ProviderAnthropic, BaseURL: e.anth.URL, APIKeyEnv: "TEST_ANTHROPIC_KEY"},
		{Name: "gemini", Kind: config.ProviderGemini, BaseURL: e.gemini.URL, APIKeyFile: writeKey(t, keys, "gemini", keyGemini, 0o600)},
		{Name: "local", Kind: config.ProviderOpenAICompatible, BaseURL: e.local.URL},
	}
	cfg.Aliases = map[string]config.LLMAlias{
		"oa":    {Targets: []config.LLMTarget{{Provider: "openai", Model: "gpt-4o-mini"}}},
		"an":    {Targets: []config.LLMTarget{{Provider: "anthropic", Model: "claude-3-5-haiku-latest"}}},
		"gm":    {Targets: []config.LLMTarget{{Provider: "gemini", Model: "gemini-2.0-flash"}}},
		"local": {Targets: []config.LLMTarget{{Provider: "local", Model: "llama3.2"}}},
		"fb":    {Targets: []config.LLMTarget{{Provider: "openai", Model: "gpt-4o-mini"}, {Provider: "anthropic", Model: "claude-3-5-haiku-latest"}}},
	}
	cfg.Cache.Enabled = false
	cfg.Routing.Retries = 0
	cfg.Routing.Backoff = time.Millisecond
	cfg.Routing.BackoffMax = 10 * time.Millisecond
	for _, m := range mod {
		m(&cfg)
	}
	e.cfg = cfg
	e.start()
	return e
}

func (e *env) getenv(k string) string {
	if k == "TEST_ANTHROPIC_KEY" {
		return keyAnthropic
	}
	return ""
}

// start (re)creates the gateway over the same dirs, as a daemon restart.
func (e *env) start() {
	e.t.Helper()
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	gw, err := newGateway(e.cfg, e.dirs, logger, e.getenv, e.clk.now)
	if err != nil {
		e.t.Fatalf("new gateway: %v", err)
	}
	e.gw = gw
	e.srv = httptest.NewServer(gw.AgentHandler())
	e.t.Cleanup(func() {
		e.srv.Close()
		gw.Close()
	})
}

// restart closes the gateway and starts a new one over the same state.
func (e *env) restart() {
	e.t.Helper()
	e.srv.Close()
	if err := e.gw.Close(); err != nil {
		e.t.Fatalf("close: %v", err)
	}
	e.start()
}

func (e *env) register(project, agent string, aliases ...string) string {
	e.t.Helper()
	tok, err := e.gw.RegisterAgent(project, agent, aliases, nil)
	if err != nil {
		e.t.Fatalf("register: %v", err)
	}
	return tok
}

// answer is an HTTP response read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer is not JSON (%d): %s", a.status, a.body)
	}
	return m
}

// seen collects every answer of a test so secrecy can be checked.
var seenMu sync.Mutex
var seenAnswers []answer

func (e *env) do(method, path, token string, body any, hdr map[string]string) answer {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, _ := json.Marshal(b)
		rd = bytes.NewReader(buf)
	}
	req, _ := http.NewRequestWithContext(context.Background(), method, e.srv.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		if strings.Contains(path, "/messages") {
			req.Header.Set("x-api-key", token)
			req.Header.Set("anthropic-version", "2023-06-01")
		} else {
			req.Header.Set("Authorization", "Bearer "+token)
		}
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("read %s: %v", path, err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, body: b}
	seenMu.Lock()
	seenAnswers = append(seenAnswers, a)
	seenMu.Unlock()
	return a
}

func (e *env) post(path, token string, body any) answer {
	e.t.Helper()
	return e.do(http.MethodPost, path, token, body, nil)
}

// sseEvents parses an SSE body into (event, data) pairs.
func sseEvents(t *testing.T, body []byte) []canon.SSEEvent {
	t.Helper()
	r := canon.NewSSEReader(bytes.NewReader(body))
	var out []canon.SSEEvent
	for {
		ev, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("sse: %v", err)
		}
		out = append(out, ev)
	}
}

// openAIStreamText reassembles an OpenAI chat.completion.chunk stream.
type oaStreamResult struct {
	text      string
	tools     map[int]*struct{ id, name, args string }
	finish    string
	native    string
	usage     map[string]any
	done      bool
	errorMsg  string
	chunks    int
	firstRole string
}

func parseOpenAIStream(t *testing.T, body []byte) oaStreamResult {
	t.Helper()
	res := oaStreamResult{tools: map[int]*struct{ id, name, args string }{}}
	for _, ev := range sseEvents(t, body) {
		if string(ev.Data) == "[DONE]" {
			res.done = true
			continue
		}
		var ch struct {
			Choices []struct {
				Delta struct {
					Role      string  `json:"role"`
					Content   *string `json:"content"`
					ToolCalls []struct {
						Index    int    `json:"index"`
						ID       string `json:"id"`
						Function struct {
							Name      string `json:"name"`
							Arguments string `json:"arguments"`
						} `json:"function"`
					} `json:"tool_calls"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
				Native       string  `json:"native_finish_reason"`
			} `json:"choices"`
			Usage map[string]any `json:"usage"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(ev.Data, &ch); err != nil {
			t.Fatalf("chunk %s: %v", ev.Data, err)
		}
		res.chunks++
		if ch.Error != nil {
			res.errorMsg = ch.Error.Message
			continue
		}
		if ch.Usage != nil {
			res.usage = ch.Usage
		}
		for _, c := range ch.Choices {
			if c.Delta.Role != "" && res.firstRole == "" {
				res.firstRole = c.Delta.Role
			}
			if c.Delta.Content != nil {
				res.text += *c.Delta.Content
			}
			for _, tc := range c.Delta.ToolCalls {
				x := res.tools[tc.Index]
				if x == nil {
					x = &struct{ id, name, args string }{}
					res.tools[tc.Index] = x
				}
				if tc.ID != "" {
					x.id = tc.ID
				}
				if tc.Function.Name != "" {
					x.name = tc.Function.Name
				}
				x.args += tc.Function.Arguments
			}
			if c.FinishReason != nil {
				res.finish = *c.FinishReason
				res.native = c.Native
			}
		}
	}
	return res
}

// anStreamResult reassembles an Anthropic typed event stream.
type anStreamResult struct {
	types  []string
	blocks []map[string]any
	stop   string
	native string
	usage  map[string]any
	start  map[string]any
	err    string
}

func parseAnthropicStream(t *testing.T, body []byte) anStreamResult {
	t.Helper()
	var res anStreamResult
	partial := map[int]string{}
	for _, ev := range sseEvents(t, body) {
		var m map[string]any
		if err := json.Unmarshal(ev.Data, &m); err != nil {
			t.Fatalf("event %s: %v", ev.Data, err)
		}
		typ, _ := m["type"].(string)
		if ev.Event != typ {
			t.Fatalf("event: %q but data type %q", ev.Event, typ)
		}
		res.types = append(res.types, typ)
		switch typ {
		case "message_start":
			res.start, _ = m["message"].(map[string]any)
		case "content_block_start":
			b, _ := m["content_block"].(map[string]any)
			res.blocks = append(res.blocks, b)
		case "content_block_delta":
			i := int(m["index"].(float64))
			d, _ := m["delta"].(map[string]any)
			switch d["type"] {
			case "text_delta":
				res.blocks[i]["text"] = res.blocks[i]["text"].(string) + d["text"].(string)
			case "input_json_delta":
				partial[i] += d["partial_json"].(string)
			}
		case "message_delta":
			d, _ := m["delta"].(map[string]any)
			res.stop, _ = d["stop_reason"].(string)
			res.native, _ = d["native_stop_reason"].(string)
			res.usage, _ = m["usage"].(map[string]any)
		case "error":
			e, _ := m["error"].(map[string]any)
			res.err, _ = e["message"].(string)
		}
	}
	for i, p := range partial {
		var in any
		if err := json.Unmarshal([]byte(p), &in); err != nil {
			t.Fatalf("tool input of block %d is not JSON: %q", i, p)
		}
		res.blocks[i]["input"] = in
	}
	return res
}

// lines splits text output.
func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
