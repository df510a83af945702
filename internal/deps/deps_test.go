package deps

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/deps/depstest"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/kerneltest"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/runtimes"
	"github.com/cortexrt/cortex/internal/runtimes/runtimestest"
	"github.com/google/go-cmp/cmp"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func builder() *Builder {
	return &Builder{Runtimes: runtimes.NewRegistry(nil, config.FromEnv().PyenvRoot)}
}

// pyAgents is one Python agent per name, running ip's runtime.
func pyAgents(ip runtimes.Interpreter, names ...string) []manifest.ResolvedAgent {
	var out []manifest.ResolvedAgent
	for _, n := range names {
		out = append(out, manifest.ResolvedAgent{Name: n, Runtime: ip.Runtime, Entrypoint: "a:main"})
	}
	return out
}

// wheelEnv serves the test wheels to pip, and nothing else.
func wheelEnv(t *testing.T) (runtimes.Interpreter, *depstest.Wheels) {
	t.Helper()
	if testing.Short() {
		t.Skip("installs packages with pip (-short)")
	}
	ip := runtimestest.Python(t)
	w := depstest.Build(t, ip)
	t.Setenv("PIP_FIND_LINKS", w.Dir)
	t.Setenv("PIP_NO_INDEX", "1")
	t.Setenv("PIP_INDEX_URL", "")
	return ip, w
}

func prepare(t *testing.T, dir string, agents []manifest.ResolvedAgent) (*Result, error) {
	t.Helper()
	res, err := builder().Prepare(context.Background(), dir, agents)
	if err == nil {
		t.Cleanup(func() { res.Close() })
	}
	return res, err
}

// TestPythonLayer installs a pure and a C-extension wheel for the agents'
// interpreter: one layer shared by both agents, the packages listed with
// their versions, the compiled module present and marked native, and the
// same install twice giving the same layer.
func TestPythonLayer(t *testing.T) {
	ip, _ := wheelEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"requirements.txt": "# test packages\ncxpure==" + depstest.PureVersion + "\ncxfast==" + depstest.FastVersion + "\n"})
	res, err := prepare(t, dir, pyAgents(ip, "a", "b"))
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if len(res.Layers) != 1 {
		t.Fatalf("%d layers, want 1 shared by both agents", len(res.Layers))
	}
	l := res.Layers[0]
	if res.Info.Agents["a"] != l.Digest || res.Info.Agents["b"] != l.Digest {
		t.Errorf("agents -> layers = %v, want both %s", res.Info.Agents, l.Digest)
	}
	info := res.Info.Layers[l.Digest]
	want := []Package{{"cxfast", depstest.FastVersion}, {"cxpure", depstest.PureVersion}}
	if diff := cmp.Diff(want, info.Packages); diff != "" {
		t.Errorf("packages (-want +got):\n%s", diff)
	}
	if info.Runtime != ip.Runtime || info.ABI != ip.ABI || !info.Native || info.Source != "requirements.txt" {
		t.Errorf("layer info = %+v", info)
	}
	so := false
	for _, f := range l.Files {
		if strings.HasPrefix(f.Path, "cxfast.") && strings.HasSuffix(f.Path, ".so") {
			so = true
		}
		if strings.HasSuffix(f.Path, ".pyc") {
			t.Errorf("bytecode in the layer: %s", f.Path)
		}
	}
	if !so {
		t.Error("no compiled cxfast module in the layer")
	}
	// The installed packages work with the interpreter they were installed for.
	out, err := exec.Command(ip.Path, "-s", "-c", "import sys; sys.path.insert(0, sys.argv[1]); import cxfast, cxpure; print(cxfast.add(2, 3), cxpure.greet('x'))", l.Dir).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "5 hello, x, from cxpure" {
		t.Errorf("using the layer: %s %v", out, err)
	}
	res2, err := prepare(t, dir, pyAgents(ip, "a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if res2.Layers[0].Digest != l.Digest || string(res2.Meta) != string(res.Meta) {
		t.Errorf("a second install gave layer %s (meta equal: %v), the first %s", res2.Layers[0].Digest, string(res2.Meta) == string(res.Meta), l.Digest)
	}
}

// TestPyproject installs [project] dependencies of a pyproject.toml.
func TestPyproject(t *testing.T) {
	ip, _ := wheelEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"pyproject.toml": "[project]\nname = \"x\"\nversion = \"1\"\ndependencies = [\"cxpure==" + depstest.PureVersion + "\"]\n"})
	res, err := prepare(t, dir, pyAgents(ip, "a"))
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	info := res.Info.Layers[res.Info.Agents["a"]]
	if info.Source != "pyproject.toml" || len(info.Packages) != 1 || info.Packages[0].Name != "cxpure" || info.Native {
		t.Errorf("layer info = %+v", info)
	}
}

// TestPythonRefusals: every refusal names the file and the package, is
// InvalidArgument (exit 2), and leaves nothing behind.
func TestPythonRefusals(t *testing.T) {
	ip, w := wheelEnv(t)
	pure := "cxpure==" + depstest.PureVersion
	fast := "cxfast==" + depstest.FastVersion
	for _, tc := range []struct {
		name, reqs string
		want       []string
	}{
		{"unresolvable", "cxpure==9.9.9\n", []string{"requirements.txt: cxpure==9.9.9: no matching distribution"}},
		{"unknown-package", "no-such-package-cortex\n", []string{"requirements.txt: no-such-package-cortex: no matching distribution"}},
		{"hash-mismatch", pure + " --hash=sha256:" + strings.Repeat("0", 64) + "\n", []string{"requirements.txt: " + pure + ": hash mismatch", "sha256 " + strings.Repeat("0", 64), w.SHA256["cxpure"]}},
		{"hash-missing", pure + " --hash=sha256:" + w.SHA256["cxpure"] + "\n" + fast + "\n", []string{"requirements.txt: " + fast + ": no --hash"}},
		{"network-at-import", "cxnet==" + depstest.NetVersion + "\n", []string{"requirements.txt: cxnet: importing cxnet needs the network"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "network-at-import" {
				requireIsolation(t)
			}
			tmp := t.TempDir()
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"requirements.txt": tc.reqs})
			b := builder()
			b.TempDir = tmp
			_, err := b.Prepare(context.Background(), dir, pyAgents(ip, "a"))
			if err == nil {
				t.Fatal("Prepare succeeded")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("category %s, want invalid argument", errdefs.CategoryOf(err))
			}
			if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
				t.Errorf("left behind: %v", ents)
			}
		})
	}
	t.Run("hash-pinned", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"requirements.txt": pure + " \\\n    --hash=sha256:" + w.SHA256["cxpure"] + "\n"})
		if _, err := prepare(t, dir, pyAgents(ip, "a")); err != nil {
			t.Fatalf("hash-pinned requirements: %v", err)
		}
	})
}

// requireIsolation skips where no network namespace can be made.
func requireIsolation(t *testing.T) {
	t.Helper()
	kerneltest.Require(t, "a network namespace for the import check", func() error {
		cmd := exec.Command("/bin/true")
		isolateNetwork(cmd)
		return cmd.Run()
	})
}

// TestNode installs a real npm package from a committed lock: node_modules
// as the layer, the package listed, the project's own node_modules left
// out of the bundle.
func TestNode(t *testing.T) {
	if testing.Short() {
		t.Skip("installs from the npm registry (-short)")
	}
	ip := runtimestest.Node(t)
	if _, err := exec.LookPath("npm"); err != nil {
		kerneltest.Missing(t, "no npm (scripts/deps.sh installs nodejs with npm)")
	}
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "node", f))
		if err != nil {
			t.Fatal(err)
		}
		writeFiles(t, dir, map[string]string{"web/" + f: string(b)})
	}
	agents := []manifest.ResolvedAgent{{Name: "web", Runtime: ip.Runtime, Entrypoint: "web/index.js:main", Dependencies: &manifest.Dependencies{File: "web/package.json"}}}
	res, err := prepare(t, dir, agents)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	info := res.Info.Layers[res.Info.Agents["web"]]
	if diff := cmp.Diff([]Package{{"ms", "2.1.3"}}, info.Packages); diff != "" {
		t.Errorf("packages (-want +got):\n%s", diff)
	}
	if info.Native || info.Kind != manifest.DepsNode {
		t.Errorf("layer info = %+v", info)
	}
	if diff := cmp.Diff([]string{"web/node_modules"}, res.Exclude); diff != "" {
		t.Errorf("exclude (-want +got):\n%s", diff)
	}
	found := false
	for _, f := range res.Layers[0].Files {
		found = found || f.Path == "ms/index.js"
	}
	if !found {
		t.Error("ms/index.js not in the layer")
	}

	t.Run("no-lock", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"package.json": `{"dependencies": {"ms": "2.1.3"}}`})
		_, err := prepare(t, dir, []manifest.ResolvedAgent{{Name: "web", Runtime: ip.Runtime}})
		if err == nil || !strings.Contains(err.Error(), "package.json: no package-lock.json beside it") || !errdefs.IsInvalidArgument(err) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestSourceOf: the default dependency file of each language, the
// manifest's own, none, and files that declare nothing.
func TestSourceOf(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"requirements.txt":   "# nothing yet\n--index-url https://example.com/simple\n",
		"pyproject.toml":     "[project]\ndependencies = [\"cxpure\"]\n",
		"package.json":       `{"name": "x"}`,
		"reqs/worker.txt":    "cxpure\n",
		"web/package.json":   `{"dependencies": {"ms": "2.1.3"}}`,
		"empty/package.json": `{"dependencies": {}}`,
	})
	py := manifest.ResolvedAgent{Name: "p", Runtime: "python3.11"}
	for _, tc := range []struct {
		name string
		a    manifest.ResolvedAgent
		want string
	}{
		{"python-default-skips-empty-requirements", py, "pyproject.toml"},
		{"node-default-without-deps", manifest.ResolvedAgent{Name: "n", Runtime: "nodejs20"}, ""},
		{"explicit", withDeps(py, "./reqs/worker.txt"), "reqs/worker.txt"},
		{"explicit-node", withDeps(manifest.ResolvedAgent{Name: "n", Runtime: "nodejs20"}, "web/package.json"), "web/package.json"},
		{"none", func() manifest.ResolvedAgent { a := py; a.Dependencies = &manifest.Dependencies{None: true}; return a }(), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := SourceOf(dir, tc.a)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if s != nil {
				got = s.File
			}
			if got != tc.want {
				t.Errorf("source = %q, want %q", got, tc.want)
			}
		})
	}
	_, err := SourceOf(dir, withDeps(py, "reqs/missing.txt"))
	if err == nil || !strings.Contains(err.Error(), "reqs/missing.txt does not exist") || !errdefs.IsInvalidArgument(err) {
		t.Errorf("missing explicit file: %v", err)
	}
}

func withDeps(a manifest.ResolvedAgent, file string) manifest.ResolvedAgent {
	a.Dependencies = &manifest.Dependencies{File: file}
	return a
}

// TestMetaCheck: packages run only with the interpreter they were
// installed for; pure Node packages with any Node.
func TestMetaCheck(t *testing.T) {
	py := LayerInfo{Kind: manifest.DepsPython, Source: "requirements.txt", Runtime: "python3.11", Version: "3.11.2", ABI: "cpython-311-x86_64-linux-gnu"}
	node := LayerInfo{Kind: manifest.DepsNode, Source: "package.json", Runtime: "nodejs20", ABI: "115"}
	for _, tc := range []struct {
		name string
		l    LayerInfo
		ip   runtimes.Interpreter
		ok   bool
	}{
		{"same-python", py, runtimes.Interpreter{Runtime: "python3.11", ABI: "cpython-311-x86_64-linux-gnu"}, true},
		{"other-python", py, runtimes.Interpreter{Runtime: "python3.12", Version: "3.12.1", ABI: "cpython-312-x86_64-linux-gnu"}, false},
		{"other-abi", py, runtimes.Interpreter{Runtime: "python3.11", ABI: "cpython-311d-x86_64-linux-gnu"}, false},
		{"pure-node-any", node, runtimes.Interpreter{Runtime: "nodejs22", ABI: "127"}, true},
		{"native-node", func() LayerInfo { l := node; l.Native = true; return l }(), runtimes.Interpreter{Runtime: "nodejs22", ABI: "127"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.l.Check("a", tc.ip)
			if (err == nil) != tc.ok {
				t.Fatalf("Check = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && (!strings.Contains(err.Error(), "were installed for "+tc.l.Runtime) || errdefs.HintOf(err) == "") {
				t.Errorf("error %q (hint %q)", err, errdefs.HintOf(err))
			}
		})
	}
	m := &Meta{Version: MetaVersion, Layers: map[string]LayerInfo{"abc": py}, Agents: map[string]string{"a": "abc"}}
	b, _ := m.Marshal()
	if _, err := ParseMeta(b, []string{"abc"}); err != nil {
		t.Errorf("ParseMeta: %v", err)
	}
	if _, err := ParseMeta(b, []string{"def"}); err == nil {
		t.Error("a meta file naming a layer the bundle lacks was accepted")
	}
	bad := &Meta{Version: MetaVersion, Layers: map[string]LayerInfo{}, Agents: map[string]string{"a": "abc"}}
	b, _ = bad.Marshal()
	if _, err := ParseMeta(b, nil); err == nil {
		t.Error("an agent with an unlisted layer was accepted")
	}
}

// FuzzParseMeta: no meta file makes ParseMeta panic, and one it accepts
// names only layers it lists.
func FuzzParseMeta(f *testing.F) {
	m := &Meta{Version: MetaVersion, Layers: map[string]LayerInfo{"abc": {Kind: manifest.DepsPython, Packages: []Package{{"x", "1"}}}}, Agents: map[string]string{"a": "abc"}}
	b, _ := m.Marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseMeta(data, nil)
		if err != nil {
			return
		}
		for a, d := range got.Agents {
			if _, ok := got.Layers[d]; !ok {
				t.Fatalf("agent %s names layer %s, which is not listed", a, d)
			}
		}
	})
}
