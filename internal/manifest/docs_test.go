package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocsExamples keeps docs/manifest.md true: every example error line
// it shows must be one the golden fixtures produce.
func TestDocsExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/manifest.md")
	if err != nil {
		t.Fatal(err)
	}
	goldens, _ := filepath.Glob("testdata/*/problems.golden")
	known := map[string]bool{}
	for _, g := range goldens {
		b, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			known[l] = true
		}
	}
	n := 0
	for _, l := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(l, "cortex.yaml:") {
			continue
		}
		n++
		if !known[l] {
			t.Errorf("docs/manifest.md shows an error no fixture produces:\n%s", l)
		}
	}
	if n < 10 {
		t.Errorf("only %d example errors found in docs/manifest.md", n)
	}
}
