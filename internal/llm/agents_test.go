package llm

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/kerneltest"
	"github.com/cortexrt/cortex/internal/llm/llmtest"
)

// TestRealClients runs a Python agent (urllib only) and a Node agent
// (fetch only) against AgentHandler on a loopback listener, with the
// environment Env gives a sandboxed agent, its base URLs pointed at the
// listener instead of llm.cortex.internal.
func TestRealClients(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Aliases["fast"] = Alias{Targets: []Target{{Provider: "anthropic", Model: "claude-3-5-haiku-latest"}}}
		c.Aliases["secret"] = Alias{Targets: []Target{{Provider: "openai", Model: "gpt-4o"}}}
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
