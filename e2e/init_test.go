package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/daemon/daemontest"
	"github.com/cortexrt/cortex/internal/llm/llmtest"
)

// initAnswer is the answer the llm template's cassette holds.
const initAnswer = "Sandboxes let agents act on their own while keeping what they can reach, spend and break within declared bounds."

// TestInit: each template writes a project that cortex run runs at once;
// a directory holding one of its files is refused with nothing written.
//
// The llm template's requirements.txt names the official openai client,
// which the tests cannot install (the Python package index is out of
// their reach): its agent then sends the same request with the standard
// library, which is what runs here, against the template's own cassette.
// The openai client's path is not exercised by these tests.
func TestInit(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	for _, tc := range []struct {
		template string
		want     []string
	}{
		{"python", []string{"worker | ", "hello", "agent=worker", "Edit agents/worker.py"}},
		{"node", []string{"worker | ", "Edit agent.js"}},
		{"swarm", []string{"consumer | ", "all tasks done"}},
		{"llm", []string{"Q: In one sentence: why run AI agents in sandboxes?", "A: " + initAnswer}},
	} {
		t.Run(tc.template, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "my-"+tc.template)
			out := d.MustCLI("", "init", "--template", tc.template, dir)
			if !strings.Contains(out, "Created project my-"+tc.template) || !strings.Contains(out, "cortex.yaml") {
				t.Fatalf("init output:\n%s", out)
			}
			if tc.template == "llm" {
				// No package index here: see the test's comment.
				os.WriteFile(filepath.Join(dir, "requirements.txt"), []byte("# openai: not installable in the tests\n"), 0o644)
			}
			r := d.CLI("", "run", dir)
			if r.Code != 0 {
				t.Fatalf("run: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.Stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, r.Stdout)
				}
			}
			d.MustCLI("", "rm", "my-"+tc.template)
			// Again into the same directory: refused, nothing changed.
			before, _ := os.ReadFile(filepath.Join(dir, "cortex.yaml"))
			r = d.CLI("", "init", "--template", tc.template, dir)
			if r.Code == 0 || !strings.Contains(r.Stderr, "already holds") {
				t.Errorf("init over a project: exit %d\n%s", r.Code, r.Stderr)
			}
			if after, _ := os.ReadFile(filepath.Join(dir, "cortex.yaml")); string(after) != string(before) {
				t.Error("init over a project changed cortex.yaml")
			}
		})
	}
	if r := d.CLI("", "init", "--template", "nope", t.TempDir()); r.Code != 2 || !strings.Contains(r.Stderr, "use one of python, node, swarm, llm") {
		t.Errorf("unknown template: exit %d\n%s", r.Code, r.Stderr)
	}
}

// TestInitCassette: the llm template's cassette holds exactly the request
// its agent makes (recorded afresh against a fake upstream, the same
// file); -update-cassettes writes it.
func TestInitCassette(t *testing.T) {
	up := llmtest.New(t, llmtest.OpenAI, "")
	up.SetDefault(llmtest.Reply{Text: initAnswer, Usage: llmtest.Usage{Input: 19, Output: 22}})
	cfg := daemontest.DefaultConfig + fmt.Sprintf("llm:\n  providers:\n    - name: fake\n      kind: openai-compatible\n      base_url: %s\n  aliases:\n    fast:\n      targets:\n        - provider: fake\n          model: gpt-4o-mini\n", up.URL)
	d := daemontest.Start(t, daemontest.Options{Config: cfg})
	dir := filepath.Join(t.TempDir(), "chat")
	d.MustCLI("", "init", "--template", "llm", dir)
	os.WriteFile(filepath.Join(dir, "requirements.txt"), []byte("# openai: not installable in the tests\n"), 0o644)
	cass := filepath.Join(t.TempDir(), "cassettes")
	r := d.CLI("", "run", "--llm-record", cass, dir)
	if r.Code != 0 || !strings.Contains(r.Stdout, "A: "+initAnswer) {
		t.Fatalf("record: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	got, _ := filepath.Glob(filepath.Join(cass, "*.json"))
	root, _ := daemontest.ModuleRoot()
	shipped := filepath.Join(root, "internal", "scaffold", "templates", "llm", "cassettes")
	if *updateCassettes {
		old, _ := filepath.Glob(filepath.Join(shipped, "*.json"))
		for _, f := range old {
			os.Remove(f)
		}
		for _, f := range got {
			b, _ := os.ReadFile(f)
			if err := os.WriteFile(filepath.Join(shipped, filepath.Base(f)), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	want, _ := filepath.Glob(filepath.Join(shipped, "*.json"))
	if len(got) != 1 || len(want) != 1 || filepath.Base(got[0]) != filepath.Base(want[0]) {
		t.Errorf("the template's agent makes %v, its cassette holds %v: go test ./e2e -run TestInitCassette -update-cassettes", got, want)
	}
}
