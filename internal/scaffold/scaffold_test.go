package scaffold

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/manifest"
)

// TestTemplates: every template renders a valid manifest named after the
// project, a README and its dependency file, with nothing left to fill.
func TestTemplates(t *testing.T) {
	for _, tmpl := range Names() {
		t.Run(tmpl, func(t *testing.T) {
			files, err := Files(tmpl, Data{Project: "demo-app"})
			if err != nil {
				t.Fatal(err)
			}
			for p, b := range files {
				if bytes.Contains(b, []byte("{{")) || strings.HasSuffix(p, ".tmpl") {
					t.Errorf("%s: not rendered", p)
				}
			}
			m, err := manifest.Check(bytes.NewReader(files["cortex.yaml"]), "cortex.yaml", manifest.ValidateOptions{})
			if err != nil {
				t.Fatalf("cortex.yaml: %v", err)
			}
			if m.Project != "demo-app" {
				t.Errorf("project = %q", m.Project)
			}
			dep := "requirements.txt"
			if tmpl == "node" {
				dep = "package.json"
			}
			for _, want := range []string{"README.md", dep, ".cortexignore"} {
				if files[want] == nil {
					t.Errorf("no %s", want)
				}
			}
			if tmpl == "llm" {
				n := 0
				for p := range files {
					if strings.HasPrefix(p, "cassettes/") && strings.HasSuffix(p, ".json") {
						n++
					}
				}
				if n == 0 || m.LLM.Replay != "./cassettes" {
					t.Errorf("llm template: %d cassette files, llm.replay %q", n, m.LLM.Replay)
				}
			}
		})
	}
}

// TestWriteRefuses: a directory holding one of the files is refused and
// nothing is written.
func TestWriteRefuses(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "README.md"), []byte("mine"), 0o644)
	_, err := Write(dir, "python", Data{Project: "x"})
	if !errdefs.IsAlreadyExists(err) || !strings.Contains(err.Error(), "README.md") {
		t.Fatalf("err = %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("wrote into the directory: %v", ents)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "README.md")); string(b) != "mine" {
		t.Error("README.md changed")
	}
	made, err := Write(filepath.Join(dir, "new", "proj"), "swarm", Data{Project: "proj"})
	if err != nil || len(made) < 5 {
		t.Fatalf("Write = %v, %v", made, err)
	}
}

func TestProjectName(t *testing.T) {
	for in, want := range map[string]string{"/tmp/My_Agent": "my-agent", "/": "my-project", "research swarm 2": "research-swarm-2", "/x/--a--": "a"} {
		if got := ProjectName(in); got != want {
			t.Errorf("ProjectName(%q) = %q, want %q", in, got, want)
		}
	}
}
