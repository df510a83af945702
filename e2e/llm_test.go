package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/daemon/daemontest"
	"github.com/cortexrt/cortex/internal/llm/llmtest"
)

// TestLLMFromSandboxes: a sandboxed Python agent (standard library only)
// and a Node agent (fetch) get answers through http://llm.cortex.internal,
// with no network.access grant and no provider key anywhere they can see;
// an agent without llm.access cannot reach the gateway; the host's
// `cortex llm` commands see the usage.
func TestLLMFromSandboxes(t *testing.T) {
	const key = "sk-upstream-secret-7f3a"
	up := llmtest.New(t, llmtest.OpenAI, key)
	keyDir := t.TempDir()
	keyFile := filepath.Join(keyDir, "openai.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := daemontest.DefaultConfig + fmt.Sprintf(`llm:
  providers:
    - name: fake
      kind: openai
      base_url: %s
      api_key_file: %s
  aliases:
    fast:
      targets:
        - provider: fake
          model: gpt-fake-mini
egress:
  hosts:
    fake-upstream.test: 127.0.0.1
`, up.URL, keyFile)
	d := daemontest.Start(t, daemontest.Options{Config: cfg})
	dir := daemontest.Project(t, map[string]string{
		"cortex.yaml": `version: "1"
project: brains
agents:
  - name: pyask
    runtime: python3.11
    entrypoint: ask:main
    capabilities:
      - llm.access: [fast]
  - name: nodeask
    runtime: nodejs20
    entrypoint: ask.js:run
    capabilities:
      - llm.access: [fast]
  - name: nollm
    runtime: python3.11
    entrypoint: nollm:main
`,
		"ask.py": `import json, os, urllib.request
def main():
    env = "\n".join("%s=%s" % kv for kv in os.environ.items())
    print("key in env:", "` + key + `" in env)
    req = urllib.request.Request(os.environ["OPENAI_BASE_URL"] + "/chat/completions",
        data=json.dumps({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"], "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as r:
        body = json.load(r)
    print("py answer:", body["choices"][0]["message"]["content"])
    bad = urllib.request.Request(os.environ["OPENAI_BASE_URL"] + "/chat/completions",
        data=json.dumps({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"Authorization": "Bearer not-a-token", "Content-Type": "application/json"})
    try:
        urllib.request.urlopen(bad, timeout=20)
        print("foreign token accepted")
    except urllib.error.HTTPError as e:
        print("foreign token refused", e.code)
`,
		"ask.js": `exports.run = async () => {
  const r = await fetch(process.env.ANTHROPIC_BASE_URL + "/v1/messages", {
    method: "POST",
    headers: {"x-api-key": process.env.ANTHROPIC_API_KEY, "content-type": "application/json", "anthropic-version": "2023-06-01"},
    body: JSON.stringify({model: "fast", max_tokens: 64, messages: [{role: "user", content: "hi"}]}),
  });
  const body = await r.json();
  console.log("node answer:", body.content[0].text);
};
`,
		"nollm.py": `import urllib.request
def main():
    try:
        urllib.request.urlopen("http://llm.cortex.internal/v1/models", timeout=5)
        print("reached the gateway")
    except Exception as e:
        print("no gateway:", type(e).__name__)
`,
	})
	r := d.CLI(dir, "run", ".")
	if r.Code != 0 {
		t.Fatalf("run: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, want := range []string{"key in env: False", "py answer: Hello from the fake openai.", "foreign token refused 401", "node answer: Hello from the fake openai.", "no gateway:"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.Stdout)
		}
	}
	if strings.Contains(r.Stdout, "reached the gateway") || strings.Contains(r.Stdout, key) {
		t.Errorf("gateway reachable without llm.access, or the key leaked:\n%s", r.Stdout)
	}
	// The upstream saw the provider key, never the agents' tokens.
	last, ok := up.Last()
	if !ok || !strings.Contains(last.Header.Get("Authorization"), key) {
		t.Errorf("upstream did not get the provider key: %+v", last.Header)
	}
	usage := d.MustCLI("", "llm", "usage", "--json")
	if !strings.Contains(usage, `"agent": "pyask"`) || !strings.Contains(usage, `"agent": "nodeask"`) {
		t.Errorf("usage lacks the agents:\n%s", usage)
	}
	if out := d.MustCLI("", "llm", "models"); !strings.Contains(out, "fake/gpt-fake-mini") {
		t.Errorf("models:\n%s", out)
	}
	if out := d.MustCLI("", "llm", "chat", "fast", "hello"); !strings.Contains(out, "Hello from the fake") {
		t.Errorf("chat:\n%s", out)
	}
	for _, a := range []string{"pyask", "nodeask", "nollm"} {
		if s := d.Final("brains", a, 10*time.Second); s.State != api.Stopped {
			t.Errorf("%s ended %s/%s", a, s.State, s.Reason)
		}
	}
}
