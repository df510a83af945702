package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/config"
)

// TestRunFlagRefusals: flag combinations run cannot honour are refused
// before a daemon is asked (exit 2, the fix named).
func TestRunFlagRefusals(t *testing.T) {
	project := t.TempDir()
	os.WriteFile(filepath.Join(project, "cortex.yaml"), []byte("version: \"1\"\nproject: p\nagents:\n  - name: a\n    entrypoint: a:main\n"), 0o644)
	bundleFile := filepath.Join(t.TempDir(), "p.cortex")
	os.WriteFile(bundleFile, []byte("x"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--write", project}, "--write applies what --learn learned"},
		{[]string{"--learn", "-d", project}, "--learn needs an attached run"},
		{[]string{"--learn", bundleFile}, "--learn needs the project's directory or cortex.yaml"},
		{[]string{"--llm-record", "a", "--llm-replay", "b", project}, "exclude each other"},
		{[]string{"-d", "--llm-record", "a", project}, "--llm-record needs an attached run"},
	} {
		t.Run(strings.Join(tc.args[:len(tc.args)-1], " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			e := &env{stdout: &stdout, stderr: &stderr, cfg: config.Env{Root: t.TempDir(), NoAutostart: true}}
			code := run(e, append([]string{"cortex", "run"}, tc.args...))
			if code != 2 || !strings.Contains(stderr.String(), tc.want) || !strings.Contains(stderr.String(), "Try: ") {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 with %q", code, stderr.String(), tc.want)
			}
		})
	}
}
