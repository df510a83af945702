package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/daemon/daemontest"
	"github.com/cortexrt/cortex/internal/deps"
	"github.com/cortexrt/cortex/internal/deps/depstest"
	"github.com/cortexrt/cortex/internal/runtimes/runtimestest"
)

// packagesProject is a Python agent importing a pure wheel and a C
// extension, and a Node agent requiring a real npm package (ms, from the
// lock committed in internal/deps/testdata/node). Each agent checks its
// packages are read-only.
func packagesProject(t *testing.T, project string) map[string]string {
	t.Helper()
	py, node := runtimestest.Python(t), runtimestest.Node(t)
	root, _ := daemontest.ModuleRoot()
	files := map[string]string{
		"cortex.yaml": `version: "1"
project: ` + project + `
agents:
  - name: py
    runtime: ` + py.Runtime + `
    entrypoint: agents.py_agent:main
  - name: web
    runtime: ` + node.Runtime + `
    entrypoint: web/index.js:main
    dependencies: web/package.json
`,
		"requirements.txt":   "cxpure==" + depstest.PureVersion + "\ncxfast==" + depstest.FastVersion + "\n",
		"agents/__init__.py": "",
		"agents/py_agent.py": `import os, cxfast, cxpure
def main():
    print("cxfast.add:", cxfast.add(40, 2))
    print(cxpure.greet("agent"))
    try:
        open(os.path.join(os.path.dirname(cxpure.__file__), "x"), "w")
        print("packages writable")
    except OSError as e:
        print("packages read-only:", e.strerror)
`,
		"web/index.js": `const ms = require('ms');
const fs = require('fs');
exports.main = async () => {
  console.log('ms says', ms(2 * 24 * 3600 * 1000, { long: true }));
  const { default: esm } = await import('ms');
  console.log('import works:', esm('1h'));
  try { fs.writeFileSync(require.resolve('ms') + '.x', 'x'); console.log('packages writable'); }
  catch (e) { console.log('packages read-only:', e.code); }
};
`,
	}
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(root, "internal", "deps", "testdata", "node", f))
		if err != nil {
			t.Fatal(err)
		}
		files["web/"+f] = string(b)
	}
	return files
}

// TestPackages: a Python agent using a locally built pure wheel and a
// C-extension wheel and a Node agent using a real npm package run
// confined, their packages read-only; the bundle, rebuilt, is
// byte-identical; bundle inspect lists the distributions; a second
// bundle with the same requirements stores its layer once on the host.
func TestPackages(t *testing.T) {
	py := runtimestest.Python(t)
	w := depstest.Build(t, py)
	t.Setenv("PIP_FIND_LINKS", w.Dir)
	t.Setenv("PIP_NO_INDEX", "1")
	d := daemontest.Start(t, daemontest.Options{})
	dir := daemontest.Project(t, packagesProject(t, "pkgs"))
	// A stale node_modules in the project is replaced by the vendored one.
	if err := os.MkdirAll(filepath.Join(dir, "web", "node_modules", "ms"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "web", "node_modules", "ms", "index.js"), []byte("module.exports = () => 'stale';\n"), 0o644)

	work := t.TempDir()
	a, b := filepath.Join(work, "a.cortex"), filepath.Join(work, "b.cortex")
	d.MustCLI(dir, "bundle", "-c", "cortex.yaml", "-o", a)
	d.MustCLI(dir, "bundle", "-c", "cortex.yaml", "-o", b)
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if len(ab) == 0 || !bytes.Equal(ab, bb) {
		t.Fatalf("the same project bundled twice differs (%d vs %d bytes)", len(ab), len(bb))
	}
	out := d.MustCLI(work, "bundle", "inspect", a)
	for _, want := range []string{"cxfast", depstest.FastVersion, "cxpure", depstest.PureVersion, "ms", "2.1.3", "agents: py", "agents: web"} {
		if !strings.Contains(out, want) {
			t.Errorf("bundle inspect lacks %q:\n%s", want, out)
		}
	}
	var js struct {
		Packages deps.Meta `json:"packages"`
	}
	daemontest.JSON(t, d.MustCLI(work, "bundle", "inspect", "--json", a), &js)
	if len(js.Packages.Layers) != 2 || len(js.Packages.Agents) != 2 {
		t.Errorf("inspect --json packages = %+v", js.Packages)
	}

	r := d.CLI(work, "run", a)
	if r.Code != 0 {
		t.Fatalf("run: exit %d\n%s\n%s\n%s", r.Code, r.Stdout, r.Stderr, d.LogText())
	}
	for _, want := range []string{"cxfast.add: 42", "hello, agent, from cxpure", "packages read-only: Read-only file system",
		"ms says 2 days", "import works: 3600000", "packages read-only: EROFS"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.Stdout)
		}
	}

	// A second project with the same requirements: its Python layer is
	// the first one's, stored once.
	other := daemontest.Project(t, map[string]string{
		"cortex.yaml":        "version: \"1\"\nproject: other\nagents:\n  - name: py\n    runtime: " + py.Runtime + "\n    entrypoint: agents.py_agent:main\n",
		"requirements.txt":   packagesProject(t, "x")["requirements.txt"],
		"agents/__init__.py": "",
		"agents/py_agent.py": "import cxfast\ndef main():\n    print('other', cxfast.add(1, 1))\n",
	})
	r = d.CLI(other, "run", ".")
	if r.Code != 0 || !strings.Contains(r.Stdout, "other 2") {
		t.Fatalf("run other: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	layers := dirNames(t, filepath.Join(d.Root, "var", "lib", "cortex", "layers"))
	if len(layers) != 2 {
		t.Errorf("layer store holds %v, want 2 layers (one Python layer shared by both projects, one Node layer)", layers)
	}
	for _, bd := range dirNames(t, filepath.Join(d.Root, "var", "lib", "cortex", "bundles")) {
		if _, err := os.Stat(filepath.Join(d.Root, "var", "lib", "cortex", "bundles", bd, ".cortex", "layers")); err == nil {
			t.Errorf("bundle %s holds its layers too", bd)
		}
	}
	// Removing one project keeps the shared layer; removing both frees it.
	d.MustCLI("", "rm", "pkgs")
	if got := dirNames(t, filepath.Join(d.Root, "var", "lib", "cortex", "layers")); len(got) != 1 {
		t.Errorf("after rm pkgs the store holds %v, want the shared Python layer only", got)
	}
	d.MustCLI("", "rm", "other")
	if got := dirNames(t, filepath.Join(d.Root, "var", "lib", "cortex", "layers")); len(got) != 0 {
		t.Errorf("after rm of both the store holds %v", got)
	}
}

// TestPackagesRefused: a Node project without its lock is refused before
// anything is written: exit 2, the file and the fix named, no bundle file.
func TestPackagesRefused(t *testing.T) {
	node := runtimestest.Node(t)
	d := daemontest.Start(t, daemontest.Options{})
	dir := daemontest.Project(t, map[string]string{
		"cortex.yaml":  "version: \"1\"\nproject: nolock\nagents:\n  - name: web\n    runtime: " + node.Runtime + "\n    entrypoint: index.js:main\n",
		"package.json": `{"name": "x", "dependencies": {"ms": "2.1.3"}}`,
		"index.js":     "exports.main = () => {};\n",
	})
	out := filepath.Join(t.TempDir(), "x.cortex")
	for _, args := range [][]string{{"bundle", "-c", "cortex.yaml", "-o", out}, {"run", "."}} {
		r := d.CLI(dir, args...)
		if r.Code != 2 || !strings.Contains(r.Stderr, "package.json: no package-lock.json beside it") || !strings.Contains(r.Stderr, "Try: run npm install") {
			t.Errorf("cortex %s: exit %d\n%s", args[0], r.Code, r.Stderr)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a bundle file was written")
	}
	var projects []json.RawMessage
	daemontest.JSON(t, d.MustCLI("", "list", "-a", "--json"), &projects)
	if len(projects) != 0 {
		t.Errorf("agents exist after a refused run: %s", projects)
	}
}
