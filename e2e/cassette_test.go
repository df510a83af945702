package e2e

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/daemon/daemontest"
	"github.com/cortexrt/cortex/internal/llm/cassette"
	"github.com/cortexrt/cortex/internal/llm/llmtest"
)

// cassetteAgent asks the gateway twice from inside its sandbox: a
// streamed request, timing each event as it arrives, and a plain one;
// it prints what it got as one JSON line.
const cassetteAgent = `import json, os, time, urllib.request
def ask(msg, stream):
    req = urllib.request.Request(os.environ["OPENAI_BASE_URL"] + "/chat/completions",
        data=json.dumps({"model": "fast", "stream": stream, "messages": [{"role": "user", "content": msg}]}).encode(),
        headers={"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"], "Content-Type": "application/json"})
    start = time.monotonic()
    text, times = "", []
    with urllib.request.urlopen(req, timeout=30) as r:
        if not stream:
            return json.load(r)["choices"][0]["message"]["content"], []
        for line in r:
            line = line.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            times.append((time.monotonic() - start) * 1000)
            for c in json.loads(line[6:]).get("choices", []):
                text += c.get("delta", {}).get("content") or ""
    return text, times
def main():
    try:
        s, times = ask("tell me a story, my token is " + os.environ["OPENAI_API_KEY"], True)
        p, _ = ask("and a plain one", False)
    except urllib.error.HTTPError as e:
        print("LLM ERROR", e.code, e.read().decode())
        raise SystemExit(1)
    print("RESULT " + json.dumps({"stream": s, "times": times, "plain": p}))
`

type cassetteResult struct {
	Stream string    `json:"stream"`
	Times  []float64 `json:"times"`
	Plain  string    `json:"plain"`
}

func parseCassetteResult(t *testing.T, stdout string) cassetteResult {
	t.Helper()
	i := strings.Index(stdout, "RESULT ")
	if i < 0 {
		t.Fatalf("no result in:\n%s", stdout)
	}
	line, _, _ := strings.Cut(stdout[i+len("RESULT "):], "\n")
	var r cassetteResult
	daemontest.JSON(t, line, &r)
	return r
}

// TestLLMRecordReplay: a run records its agent's LLM answers from a fake
// upstream through the real binaries; the upstream is stopped; a daemon
// with no LLM configuration at all replays them: the same answers, zero
// upstream calls, the stream's pace within 10%. No key or token is in
// the cassettes.
func TestLLMRecordReplay(t *testing.T) {
	const key = "sk-upstream-secret-c4553"
	up := llmtest.New(t, llmtest.OpenAI, key)
	up.Push(
		llmtest.Reply{Text: "once upon a time a swarm of agents kept its keys to itself " + key, ChunkDelay: 40 * time.Millisecond},
		llmtest.Reply{Text: "a plain answer"},
	)
	keyFile := filepath.Join(t.TempDir(), "openai.key")
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
`, up.URL, keyFile)
	d := daemontest.Start(t, daemontest.Options{Config: cfg})
	dir := daemontest.Project(t, map[string]string{
		"cortex.yaml": "version: \"1\"\nproject: tapes\nagents:\n  - name: teller\n    runtime: python3.11\n    entrypoint: teller:main\n    capabilities:\n      - llm.access: [fast]\n",
		"teller.py":   cassetteAgent,
	})
	cass := filepath.Join(t.TempDir(), "cassettes")
	r := d.CLI(dir, "run", "--llm-record", cass, ".")
	if r.Code != 0 || !strings.Contains(r.Stderr, "Recorded 2 answer(s) to 2 request(s) in "+cass) {
		t.Fatalf("record run: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	rec := parseCassetteResult(t, r.Stdout)
	if !strings.HasPrefix(rec.Stream, "once upon a time") || rec.Plain != "a plain answer" || len(rec.Times) < 10 {
		t.Fatalf("recorded run got %+v", rec)
	}
	files, _ := filepath.Glob(filepath.Join(cass, "*.json"))
	if len(files) != 2 {
		t.Fatalf("cassette files: %v", files)
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), key) || strings.Contains(string(b), "cxk_") {
			t.Errorf("%s holds a key or an agent token", f)
		}
	}
	upstream := up.Count()
	up.Close()

	// Another daemon, with no LLM configuration: no provider, no key.
	d2 := daemontest.Start(t, daemontest.Options{})
	r = d2.CLI(dir, "run", "--llm-replay", cass, ".")
	if r.Code != 0 {
		t.Fatalf("replay run: exit %d\n%s\n%s\n%s", r.Code, r.Stdout, r.Stderr, d2.LogText())
	}
	rep := parseCassetteResult(t, r.Stdout)
	// The provider's echo of its key was redacted when recorded.
	if rep.Stream != strings.ReplaceAll(rec.Stream, key, "[redacted]") || rep.Plain != rec.Plain {
		t.Errorf("replayed answers differ:\n%+v\nrecorded:\n%+v", rep, rec)
	}
	if up.Count() != upstream {
		t.Errorf("the replay reached the upstream")
	}
	if len(rep.Times) != len(rec.Times) {
		t.Fatalf("replayed %d stream events, recorded %d", len(rep.Times), len(rec.Times))
	}
	// The pace, against the times the cassette recorded (as the gateway
	// saw the events come): the agent's first data line is the start
	// event's, its last the finish event's.
	var recSpan float64
	for _, f := range files {
		b, _ := os.ReadFile(f)
		c, err := cassette.Parse(f, b)
		if err != nil {
			t.Fatal(err)
		}
		if !c.Interactions[0].Stream {
			continue
		}
		var start, end float64
		for _, te := range c.Interactions[0].Events {
			switch te.Kind {
			case "start":
				start = te.AtMs
			case "finish":
				end = te.AtMs
			}
		}
		recSpan = end - start
	}
	repSpan := rep.Times[len(rep.Times)-1] - rep.Times[0]
	if recSpan < 300 || repSpan < recSpan*0.9 || repSpan > recSpan*1.1 {
		t.Errorf("the replayed stream spans %.1f ms, the cassette %.1f ms (more than 10%% apart)", repSpan, recSpan)
	}
	t.Logf("stream span: recorded %.1f ms, replayed in the sandbox %.1f ms", recSpan, repSpan)

	// A request the cassette lacks fails, naming it.
	os.WriteFile(filepath.Join(dir, "teller.py"), []byte(strings.Replace(cassetteAgent, "and a plain one", "something new", 1)), 0o644)
	r = d2.CLI(dir, "run", "--llm-replay", cass, ".")
	if r.Code == 0 || !strings.Contains(r.Stdout, "LLM ERROR 404") || !strings.Contains(r.Stdout, "the cassette has no answer for this request") || !strings.Contains(r.Stdout, "something new") {
		t.Errorf("replay miss: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
}

var updateCassettes = flag.Bool("update-cassettes", false, "record examples/swarm/cassettes again (TestExampleCassette)")

// exampleSummary is the answer the example's cassette holds.
const exampleSummary = "Three findings on confining agents: namespaces isolate them, cgroups cap their memory, and egress allowlists keep their tool calls in bounds."

// TestExampleCassette: the cassette shipped with examples/swarm holds
// exactly the requests the example makes: recording the example afresh
// against a fake upstream gives the same files (run with
// -update-cassettes to write them after changing the example).
func TestExampleCassette(t *testing.T) {
	up := llmtest.New(t, llmtest.OpenAI, "")
	up.SetDefault(llmtest.Reply{Text: exampleSummary, Usage: llmtest.Usage{Input: 48, Output: 27}})
	cfg := daemontest.DefaultConfig + fmt.Sprintf(`llm:
  providers:
    - name: fake
      kind: openai-compatible
      base_url: %s
  aliases:
    fast:
      targets:
        - provider: fake
          model: gpt-4o-mini
`, up.URL)
	d := daemontest.Start(t, daemontest.Options{Config: cfg})
	root, _ := daemontest.ModuleRoot()
	work := filepath.Join(t.TempDir(), "swarm")
	copyTree(t, filepath.Join(root, "examples", "swarm"), work)
	cass := filepath.Join(t.TempDir(), "cassettes")
	r := d.CLI("", "run", "--llm-record", cass, work)
	if r.Code != 0 || !strings.Contains(r.Stdout, "summary: "+exampleSummary) {
		t.Fatalf("record run: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	got, _ := filepath.Glob(filepath.Join(cass, "*.json"))
	shipped := filepath.Join(root, "examples", "swarm", "cassettes")
	if *updateCassettes {
		old, _ := filepath.Glob(filepath.Join(shipped, "*.json"))
		for _, f := range old {
			os.Remove(f)
		}
		os.MkdirAll(shipped, 0o755)
		for _, f := range got {
			b, _ := os.ReadFile(f)
			if err := os.WriteFile(filepath.Join(shipped, filepath.Base(f)), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	want, _ := filepath.Glob(filepath.Join(shipped, "*.json"))
	base := func(fs []string) []string {
		var out []string
		for _, f := range fs {
			out = append(out, filepath.Base(f))
		}
		return out
	}
	if strings.Join(base(got), ",") != strings.Join(base(want), ",") {
		t.Errorf("the example makes requests %v, its cassette holds %v: run go test ./e2e -run TestExampleCassette -update-cassettes", base(got), base(want))
	}
}
