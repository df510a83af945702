package learn

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/events"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/patch/*/want.yaml and want.diff")

// TestPatch applies suggestions to manifests of every shape and compares
// the result, byte for byte, with want.yaml: comments, blank lines, key
// order and list styles stay as written. Regenerate with -update after
// checking the change.
func TestPatch(t *testing.T) {
	cases, _ := filepath.Glob("testdata/patch/*/cortex.yaml")
	if len(cases) == 0 {
		t.Fatal("no fixtures")
	}
	for _, c := range cases {
		dir := filepath.Dir(c)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			src, _ := os.ReadFile(c)
			var sugg []Suggestion
			raw, _ := os.ReadFile(filepath.Join(dir, "suggestions.json"))
			if err := json.Unmarshal(raw, &sugg); err != nil {
				t.Fatal(err)
			}
			got, err := Patch(src, "cortex.yaml", sugg)
			if err != nil {
				t.Fatalf("Patch: %v", err)
			}
			diff := Diff("cortex.yaml", "cortex.yaml (learned)", src, got)
			if *update {
				os.WriteFile(filepath.Join(dir, "want.yaml"), got, 0o644)
				os.WriteFile(filepath.Join(dir, "want.diff"), []byte(diff), 0o644)
				return
			}
			want, err := os.ReadFile(filepath.Join(dir, "want.yaml"))
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if d := cmp.Diff(string(want), string(got)); d != "" {
				t.Errorf("patched manifest (-want +got):\n%s", d)
			}
			wantDiff, _ := os.ReadFile(filepath.Join(dir, "want.diff"))
			if d := cmp.Diff(string(wantDiff), diff); d != "" {
				t.Errorf("diff (-want +got):\n%s", d)
			}
			// Every original line is still there, in order, with its
			// comment: nothing but insertions (of lines, or of entries
			// into a line), and an empty "[]" that becomes a block list.
			kept := 0
			gl := strings.Split(string(got), "\n")
			for _, l := range strings.Split(strings.TrimSuffix(string(src), "\n"), "\n") {
				l := strings.Replace(l, " []", "", 1)
				for kept < len(gl) && gl[kept] != l && !subsequence(l, gl[kept]) {
					kept++
				}
				if kept == len(gl) {
					t.Errorf("original line %q lost or reordered", l)
					break
				}
				kept++
			}
			// Patching the result again with the same suggestions is
			// refused by nothing, and Suggest finds nothing left to add.
			m, err := manifest.Parse(bytes.NewReader(got), "cortex.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Validate(manifest.ValidateOptions{}); err != nil {
				t.Errorf("patched manifest is invalid: %v", err)
			}
		})
	}
}

// subsequence reports whether a's bytes appear in b in order, from the
// same indentation.
func subsequence(a, b string) bool {
	if len(a)-len(strings.TrimLeft(a, " ")) != len(b)-len(strings.TrimLeft(b, " ")) {
		return false
	}
	i := 0
	for j := 0; i < len(a) && j < len(b); j++ {
		if a[i] == b[j] {
			i++
		}
	}
	return i == len(a)
}

// TestSuggest: the narrowest lines, none the agent has, none for what no
// line lifts; reads of paths the project lacks are no suggestion.
func TestSuggest(t *testing.T) {
	proj := t.TempDir()
	for _, d := range []string{"data/raw", "prompts", "output"} {
		os.MkdirAll(filepath.Join(proj, d), 0o755)
	}
	os.WriteFile(filepath.Join(proj, "data", "raw", "a.csv"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(proj, "prompts", "sys.txt"), []byte("x"), 0o644)
	src := `version: "1"
project: p
agents:
  - name: a
    entrypoint: agents.a:main
    capabilities:
      - network.access: ["pypi.org"]
      - bus.publish: []
      - filesystem.read: ["./prompts"]
  - name: b
    entrypoint: agents.b:main
`
	m, err := manifest.Parse(strings.NewReader(src), "cortex.yaml")
	if err != nil {
		t.Fatal(err)
	}
	denials := []Denial{
		{Agent: "a", Kind: KindEgress, Host: "api.example.com", Port: 443, Reason: "name not allowed", Count: 3},
		{Agent: "a", Kind: KindEgress, Host: "pypi.org", Port: 443, Reason: "name not allowed"},           // already allowed
		{Agent: "a", Kind: KindEgress, Host: "llm.cortex.internal", Port: 80, Reason: "name not allowed"}, // llm.access grants it
		{Agent: "a", Kind: KindBus, Op: "publish", Channel: "results"},
		{Agent: "a", Kind: KindLLM, Alias: "fast", Reason: "alias"},
		{Agent: "a", Kind: KindLLM, Alias: "smart", Reason: "budget"},
		{Agent: "a", Kind: KindFS, Path: "data/raw/a.csv", Access: "read", Reason: "ENOENT"},
		{Agent: "a", Kind: KindFS, Path: "data/raw", Access: "read", Reason: "ENOENT"},
		{Agent: "a", Kind: KindFS, Path: "prompts/sys.txt", Access: "read", Reason: "ENOENT"}, // granted
		{Agent: "a", Kind: KindFS, Path: "json.py", Access: "read", Reason: "ENOENT"},         // an import probe: not in the project
		{Agent: "a", Kind: KindFS, Path: ".cortex/deps.json", Access: "read", Reason: "EACCES"},
		{Agent: "b", Kind: KindFS, Path: "output/report.md", Access: "write", Reason: "ENOENT"},
		{Agent: "b", Kind: KindFS, Path: "output", Access: "read", Reason: "ENOENT"}, // covered by the write
		{Agent: "b", Kind: KindFS, Path: "new/dir", Access: "write", Parent: true, Reason: "EROFS"},
		{Agent: "b", Kind: KindBus, Op: "subscribe", Channel: "tasks"}, // no ACL: every channel allowed
		{Agent: "ghost", Kind: KindBus, Op: "publish", Channel: "x"},
	}
	got, notes := Suggest(m, denials, proj)
	strip := func(ss []Suggestion) []Suggestion {
		for i := range ss {
			ss[i].Why = ""
		}
		return ss
	}
	want := []Suggestion{
		{Agent: "a", Capability: "bus.publish", Value: "results"},
		{Agent: "a", Capability: "filesystem.read", Value: "./data/raw"},
		{Agent: "a", Capability: "llm.access", Value: "fast"},
		{Agent: "a", Capability: "network.access", Value: "api.example.com:443"},
		{Agent: "b", Capability: "filesystem.write", Value: "./new/dir"},
		{Agent: "b", Capability: "filesystem.write", Value: "./output"},
	}
	if d := cmp.Diff(want, strip(got)); d != "" {
		t.Errorf("suggestions (-want +got):\n%s", d)
	}
	if len(notes) != 2 || !strings.Contains(notes[0].Text, "reached for the LLM gateway without llm.access") || !strings.Contains(notes[1].Text, "smart: refused for budget") {
		t.Errorf("notes = %+v", notes)
	}
}

// TestCollector: refusals from the event stream, one per kind and value
// with a count, of one project only.
func TestCollector(t *testing.T) {
	c := NewCollector("p")
	for _, e := range []events.Event{
		{Project: "p", Agent: "a", Detail: events.EgressDeniedDetail{Protocol: "tcp", Host: "API.example.com.", Port: 443, Reason: "name not allowed"}},
		{Project: "p", Agent: "a", Detail: events.EgressDeniedDetail{Protocol: "tcp", Host: "api.example.com", Port: 443, Reason: "name not allowed"}},
		{Project: "p", Agent: "a", Detail: events.EgressDeniedDetail{Protocol: "tcp", Addr: "10.0.0.1", Port: 443, Reason: "literal address"}},
		{Project: "p", Agent: "a", Detail: events.EgressDeniedDetail{Protocol: "dns", Host: "x.example.com", Reason: "name not allowed"}},
		{Project: "p", Agent: "a", Detail: events.FSDeniedDetail{Path: "/app/data/x", Access: "read", Errno: "ENOENT"}},
		{Project: "p", Agent: "a", Detail: events.FSDeniedDetail{Path: "/etc/shadow", Access: "read", Errno: "ENOENT"}},
		{Project: "p", Agent: "a", Detail: events.FSDeniedDetail{Path: "/appx/y", Access: "read", Errno: "ENOENT"}},
		{Project: "q", Agent: "a", Detail: events.BusDeniedDetail{Op: "publish", Channel: "r"}},
		{Project: "p", Agent: "a", Detail: events.AgentStateDetail{State: "running"}},
	} {
		c.Add(e)
	}
	got, dropped := c.Denials()
	want := []Denial{
		{Agent: "a", Kind: KindEgress, Host: "api.example.com", Port: 443, Reason: "name not allowed", Count: 2},
		{Agent: "a", Kind: KindEgress, Host: "x.example.com", Reason: "name not allowed", Count: 1},
		{Agent: "a", Kind: KindFS, Path: "data/x", Access: "read", Reason: "ENOENT", Count: 1},
	}
	if d := cmp.Diff(want, got); d != "" || dropped != 0 {
		t.Errorf("denials (-want +got):\n%s (dropped %d)", d, dropped)
	}
}

func TestDiff(t *testing.T) {
	a := "a\nb\nc\nd\ne\nf\ng\nh\ni\n"
	b := "a\nb\nc\nd\nX\ne\nf\ng\nh\ni\n"
	want := "--- old\n+++ new\n@@ -2,6 +2,7 @@\n b\n c\n d\n+X\n e\n f\n g\n"
	if got := Diff("old", "new", []byte(a), []byte(b)); got != want {
		t.Errorf("Diff =\n%s\nwant\n%s", got, want)
	}
	if Diff("a", "b", []byte(a), []byte(a)) != "" {
		t.Error("a diff of equal texts")
	}
}

// FuzzPatch: whatever the manifest text, Patch does not panic, and what
// it returns parses and holds the suggestion (it checks that itself).
func FuzzPatch(f *testing.F) {
	cases, _ := filepath.Glob("testdata/patch/*/cortex.yaml")
	for _, c := range cases {
		b, _ := os.ReadFile(c)
		f.Add(b)
	}
	sugg := []Suggestion{
		{Agent: "fetcher", Capability: "network.access", Value: "api.example.com:443"},
		{Agent: "fetcher", Capability: "filesystem.read", Value: "./data"},
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		out, err := Patch(src, "cortex.yaml", sugg)
		if err != nil {
			return
		}
		if _, err := manifest.Parse(bytes.NewReader(out), "cortex.yaml"); err != nil {
			t.Fatalf("Patch returned an unparsable manifest: %v\n%s", err, out)
		}
	})
}
