package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/config"
)

// TestValidateDaemonConfig checks that cortex validate reads the daemon
// config's runtimes: overrides and refuses a broken config instead of
// silently checking without it.
func TestValidateDaemonConfig(t *testing.T) {
	project := t.TempDir()
	manifest := "version: \"1\"\nproject: p\nagents:\n  - name: a\n    runtime: python3.11\n    entrypoint: agent:main\n"
	if err := os.WriteFile(filepath.Join(project, "cortex.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		config   string
		wantCode int
		want     string
	}{
		{"broken config", "version: \"1\"\nruntimes: [python3.11]\n", 2, `config.yaml:2:11: runtimes: expected a map, found a list`},
		{"override used", "version: \"1\"\nruntimes:\n  python3.11: /nonexistent/python3.11\n", 2, "agents[0].runtime: no python3.11 interpreter found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			p := config.NewPaths(root)
			if err := os.MkdirAll(filepath.Dir(p.ConfigFile), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p.ConfigFile, []byte(tc.config), 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			code := run(&env{stdout: &stdout, stderr: &stderr, cfg: config.Env{Root: root}}, []string{"cortex", "validate", project})
			if code != tc.wantCode || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, want %d; stderr:\n%s\nwant containing %q", code, tc.wantCode, stderr.String(), tc.want)
			}
		})
	}
}
