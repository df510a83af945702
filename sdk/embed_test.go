package sdk

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/runtimes"
	"github.com/cortexrt/cortex/internal/runtimes/runtimestest"
)

// TestEmbedsEverySDKFile: every source file of the SDK trees on disk is
// embedded (a new module must not be forgotten by the go:embed patterns).
func TestEmbedsEverySDKFile(t *testing.T) {
	embedded := map[string]bool{}
	for _, p := range paths() {
		embedded[p] = true
	}
	for _, root := range []string{"python", "node"} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == "__pycache__" || d.Name() == "node_modules" {
					return filepath.SkipDir
				}
				return nil
			}
			if !embedded[filepath.ToSlash(p)] {
				t.Errorf("%s is not embedded", p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"python/cortex/__init__.py", "python/cortex/bus.py", "python/cortex/log.py", "node/cortex/bus.js", "node/cortex/log.js"} {
		if !embedded[want] {
			t.Errorf("%s missing from the embed", want)
		}
	}
}

// TestWriteToImports writes the tree out and imports it the way the daemon
// sets agents up: PYTHONPATH / NODE_PATH.
func TestWriteToImports(t *testing.T) {
	dir := t.TempDir()
	if err := WriteTo(dir); err != nil {
		t.Fatal(err)
	}
	if err := WriteTo(dir); err != nil { // idempotent over an existing tree
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "python", "cortex", "bus.py"))
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("bus.py: %v %v", st, err)
	}
	for _, tc := range []struct {
		name string
		bin  func(testing.TB) runtimes.Interpreter
		env  string
		args []string
	}{
		{"python", runtimestest.Python, "PYTHONPATH=" + PythonPath(dir),
			[]string{"-c", "import cortex, cortex.log; from cortex.bus import publish, subscribe, publish_async, subscribe_async; print('ok')"}},
		{"node", runtimestest.Node, "NODE_PATH=" + NodePath(dir),
			[]string{"-e", "const {publish, subscribe} = require('cortex/bus'); require('cortex/log'); require('cortex'); console.log('ok')"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(tc.bin(t).Path, tc.args...)
			cmd.Env = append(os.Environ(), tc.env, "PYTHONDONTWRITEBYTECODE=1")
			out, err := cmd.CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "ok" {
				t.Fatalf("%s: %v\n%s", tc.name, err, out)
			}
		})
	}
	if d := Digest(); len(d) != 64 || d != Digest() {
		t.Errorf("Digest() = %q, want a stable sha256", d)
	}
}
