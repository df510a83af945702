package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestRenderedCommandsParse: every "cortexd cluster MODE ARGS" a golden
// render of internal/kube (and the Helm chart's DaemonSet) runs is a mode
// here whose flags accept those arguments, so render and the in-cluster
// side cannot drift apart.
func TestRenderedCommandsParse(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "kube", "testdata", "golden", "*", "*.yaml"))
	files = append(files, filepath.Join("..", "..", "deploy", "helm", "cortex", "templates", "seccomp.yaml"))
	seen := map[string]int{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(f, "helm") { // a template: keep the container lines only
			data = []byte(strings.Join(grepLines(string(data), "command:", "args:"), "\n"))
		}
		var doc any
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		walk(doc, func(m map[string]any) {
			cmd, _ := m["command"].([]any)
			if len(cmd) < 3 || cmd[0] != "cortexd" || cmd[1] != "cluster" {
				return
			}
			mode := cmd[2].(string)
			var args []string
			for _, a := range m["args"].([]any) {
				args = append(args, a.(string))
			}
			if err := Parse(mode, args); err != nil {
				t.Errorf("%s: cortexd cluster %s %v: %v", f, mode, args, err)
			}
			seen[mode]++
		})
	}
	for m := range modes {
		if seen[m] == 0 {
			t.Errorf("no rendered object runs mode %s", m)
		}
	}
}

func grepLines(s string, keys ...string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, k := range keys {
			if strings.HasPrefix(strings.TrimSpace(l), k) {
				out = append(out, strings.TrimSpace(l))
			}
		}
	}
	return out
}

func walk(v any, fn func(map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		fn(x)
		for _, c := range x {
			walk(c, fn)
		}
	case []any:
		for _, c := range x {
			walk(c, fn)
		}
	}
}
