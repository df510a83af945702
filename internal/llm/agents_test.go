package llm

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/kerneltest"
	"github.com/cortexrt/cortex/internal/llm/llmtest"
	"github.com/google/go-cmp/cmp"
)

// TestRealClients runs a Python agent (urllib only) and a Node agent
// (fetch only) against AgentHandler on a loopback listener, with the
// environment Env gives a sandboxed agent, its base URLs pointed at the
// listener instead of llm.cortex.internal.
func TestRealClients(t *testing.T) {
	e := newEnv(t, func(c *config.LLM) {
		c.Aliases["fast"] = config.LLMAlias{Targets: []config.LLMTarget{{Provider: "anthropic", Model: "claude-3-5-haiku-latest"}}}
		c.Aliases["secret"] = config.LLMAlias{Targets: []config.LLMTarget{{Provider: "openai", Model: "gpt-4o"}}}
	})
	e.anth.SetDefault(llmtest.Reply{Text: "Hello from the fake anthropic.", Usage: llmtest.Usage{Input: 4, Output: 6}})
	clients := []struct {
		name string
		bin  string
		args []string
	}{
		{"python urllib", "python3", []string{filepath.Join("testdata", "agents", "agent.py")}},
		{"node fetch", "node", []string{filepath.Join("testdata", "agents", "agent.mjs")}},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			bin, err := exec.LookPath(c.bin)
			if err != nil {
				kerneltest.Missing(t, c.bin+" is not installed")
			}
			tok := e.register("p", strings.ReplaceAll(c.name, " ", "-"), "fast")
			var env []string
			for _, kv := range Env(tok) {
				kv = strings.Replace(kv, "http://"+Host, e.srv.URL, 1)
				env = append(env, kv)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, c.args...)
			cmd.Env = append(env, "PATH=/usr/bin:/bin", "HOME="+t.TempDir())
			out, err := cmd.Output()
			if err != nil {
				var stderr string
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = string(ee.Stderr)
				}
				t.Fatalf("%s: %v\n%s\n%s", c.bin, err, out, stderr)
			}
			var got struct {
				Chat, Stream, Messages string
				LatencyHeader          string `json:"latency_header"`
				Forbidden              int
				ForbiddenMessage       string `json:"forbidden_message"`
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("output %s: %v", out, err)
			}
			want := "Hello from the fake anthropic."
			if got.Chat != want || got.Stream != want || got.Messages != want {
				t.Errorf("chat %q stream %q messages %q", got.Chat, got.Stream, got.Messages)
			}
			if got.LatencyHeader == "" {
				t.Errorf("no latency header")
			}
			if got.Forbidden != 403 || !strings.Contains(got.ForbiddenMessage, "llm.access") {
				t.Errorf("forbidden alias: %d %q", got.Forbidden, got.ForbiddenMessage)
			}
		})
	}
}

// TestOfficialSDKs runs the official OpenAI and Anthropic Node SDKs against
// the gateway. The SDKs are not vendored: the test runs when LLM_SDK_DIR
// names a directory where `npm install openai @anthropic-ai/sdk` was run.
func TestOfficialSDKs(t *testing.T) {
	dir := os.Getenv("LLM_SDK_DIR")
	if dir == "" {
		t.Skip("LLM_SDK_DIR is not set (a directory with node_modules/openai and node_modules/@anthropic-ai/sdk)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	e := newEnv(t, func(c *config.LLM) {
		c.Aliases["fast"] = config.LLMAlias{Targets: []config.LLMTarget{{Provider: "anthropic", Model: "claude-3-5-haiku-latest"}}}
		c.Aliases["emb"] = config.LLMAlias{Targets: []config.LLMTarget{{Provider: "openai", Model: "text-embedding-3-small"}}}
		c.Aliases["secret"] = config.LLMAlias{Targets: []config.LLMTarget{{Provider: "openai", Model: "gpt-4o"}}}
	})
	e.anth.SetDefault(llmtest.Reply{Text: "Sunny.", ToolCalls: []llmtest.ToolCall{{ID: "toolu_1", Name: "get_forecast", Args: `{"city":"Paris"}`}},
		Usage: llmtest.Usage{Input: 10, Output: 4, CacheRead: 2}})
	tok := e.register("p", "sdk", "fast", "emb")
	var env []string
	for _, kv := range Env(tok) {
		env = append(env, strings.Replace(kv, "http://"+Host, e.srv.URL, 1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "agents", "sdk.mjs"))
	cmd.Env = append(env, "LLM_SDK_DIR="+dir, "PATH=/usr/bin:/bin", "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	tool := map[string]any{"name": "get_forecast", "arguments": `{"city":"Paris"}`}
	checks := []struct {
		field string
		want  any
	}{
		{"chat_text", "Sunny."},
		{"chat_tool", tool},
		{"stream_text", "Sunny."},
		{"stream_tool", tool},
		{"embedding", []any{float64(5), 0.5, -0.25}},
		{"models", []any{"emb", "fast"}},
		{"msg_stop", "tool_use"},
		{"msgstream_stop", "tool_use"},
		{"forbidden", float64(403)},
	}
	for _, c := range checks {
		if d := cmp.Diff(c.want, got[c.field]); d != "" {
			t.Errorf("%s (-want +got):\n%s", c.field, d)
		}
	}
	for _, f := range []string{"chat_usage", "stream_usage"} {
		u, _ := got[f].(map[string]any)
		if u["prompt_tokens"] != float64(12) || u["completion_tokens"] != float64(4) {
			t.Errorf("%s %v", f, got[f])
		}
	}
	for _, f := range []string{"msg_content", "msgstream_content"} {
		blocks, _ := got[f].([]any)
		if len(blocks) != 2 || blocks[1].(map[string]any)["input"].(map[string]any)["city"] != "Paris" {
			t.Errorf("%s %v", f, got[f])
		}
	}
}
