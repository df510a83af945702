package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/daemon/daemontest"
)

// TestBundleReproducible: bundling the same tree twice (with different
// mtimes in between) gives byte-identical files, and the bundle runs.
func TestBundleReproducible(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	root, _ := daemontest.ModuleRoot()
	src := filepath.Join(root, "examples", "hello")
	work := t.TempDir()
	// Copy the example so touching mtimes does not dirty the repository.
	copyTree(t, src, filepath.Join(work, "hello"))
	a := filepath.Join(work, "a.cortex")
	b := filepath.Join(work, "b.cortex")
	d.MustCLI(work, "bundle", "--config", "hello/cortex.yaml", "--output", a)
	later := time.Now().Add(time.Hour)
	_ = filepath.Walk(filepath.Join(work, "hello"), func(p string, _ os.FileInfo, _ error) error {
		return os.Chtimes(p, later, later)
	})
	d.MustCLI(work, "bundle", "--config", "hello/cortex.yaml", "--output", b)
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if len(ab) == 0 || !bytes.Equal(ab, bb) {
		t.Fatalf("two bundles of the same tree differ (%d vs %d bytes)", len(ab), len(bb))
	}
	out := d.MustCLI(work, "bundle", "inspect", a)
	if !strings.Contains(out, "sha256:") || !strings.Contains(out, "agents/greeter.py") || !strings.Contains(out, "project: hello") {
		t.Errorf("bundle inspect output:\n%s", out)
	}
	r := d.CLI(work, "run", a)
	if r.Code != 0 || !strings.Contains(r.Stdout, "hello from greeter") {
		t.Fatalf("run of the bundle: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestHostileBundlesRefused: every hostile archive of the bundle suite is
// refused by `cortex run` with an error naming the problem, and the daemon
// wrote nothing for it: no unpacked bundle, no project, nothing outside.
func TestHostileBundlesRefused(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	root, _ := daemontest.ModuleRoot()
	fixtures, _ := filepath.Glob(filepath.Join(root, "internal", "bundle", "testdata", "hostile", "*.cortex"))
	if len(fixtures) < 10 {
		t.Fatalf("only %d hostile fixtures found", len(fixtures))
	}
	before := listTree(t, d.Root)
	for _, f := range fixtures {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := d.CLI("", "run", "-d", f)
			if r.Code == 0 {
				t.Fatalf("hostile bundle accepted:\n%s", r.Stdout)
			}
			if !strings.Contains(r.Stderr, "bundle") {
				t.Errorf("error does not say what is wrong:\n%s", r.Stderr)
			}
		})
	}
	if ps, _ := d.Client.Projects(t.Context()); len(ps) != 0 {
		t.Errorf("projects created from hostile bundles: %+v", ps)
	}
	after := listTree(t, d.Root)
	if extra := diff(after, before); len(extra) != 0 {
		t.Errorf("hostile bundles left files behind: %v", extra)
	}
	for _, p := range []string{"/etc/cron.d/x", "/tmp/cortex-escaped", "/tmp/evil"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s exists after the hostile bundles", p)
		}
	}
}

func listTree(t *testing.T, root string) []string {
	var out []string
	_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		// Files the daemon writes for itself anyway.
		if strings.HasPrefix(rel, "var/log") || strings.HasPrefix(rel, "var/lib/cortex/state.db") || strings.HasSuffix(rel, ".log") {
			return nil
		}
		out = append(out, rel)
		return nil
	})
	sort.Strings(out)
	return out
}

func diff(a, b []string) []string {
	in := map[string]bool{}
	for _, x := range b {
		in[x] = true
	}
	var out []string
	for _, x := range a {
		if !in[x] {
			out = append(out, x)
		}
	}
	return out
}

// TestValidateAndBadInput: cortex validate prints every problem with
// file:line:col, field and fix, exits 2; `cortex run` of the same refuses
// before touching the daemon; unknown and ambiguous agent names fail with
// a hint.
func TestValidateAndBadInput(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	dir := daemontest.Project(t, map[string]string{
		"cortex.yaml": `version: "1"
project: bad-one
agents:
  - name: a
    runtime: python3.11
    entrypoint: agent:main
    resources:
      mem_limit: 2GB
  - name: a
    runtime: python3.11
    entrypiont: agent:main
`,
	})
	r := d.CLI(dir, "validate")
	if r.Code != 2 {
		t.Fatalf("validate exit %d, want 2\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, want := range []string{
		`cortex.yaml:8:7: agents[0].resources.mem_limit: "2GB" is not a quantity; use Mi or Gi, e.g. 2Gi`,
		`agents[1].entrypiont`, `did you mean "entrypoint"`,
		`agents[1].name`,
	} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("validate output lacks %q:\n%s", want, r.Stderr)
		}
	}
	r = d.CLI(dir, "run", "-d", ".")
	if r.Code != 2 || !strings.Contains(r.Stderr, "2GB") {
		t.Errorf("run of an invalid manifest: exit %d\n%s", r.Code, r.Stderr)
	}
	ok := daemontest.Project(t, map[string]string{
		"cortex.yaml": manifest("p1", pyAgent("same", "a:main", "")),
		"a.py":        "def main():\n    pass\n",
	})
	ok2 := daemontest.Project(t, map[string]string{
		"cortex.yaml": manifest("p2", pyAgent("same", "a:main", "")),
		"a.py":        "def main():\n    pass\n",
	})
	if r := d.CLI(ok, "validate"); r.Code != 0 || !strings.Contains(r.Stdout, "valid") {
		t.Errorf("validate of a good manifest: %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
	d.MustCLI(ok, "run", ".")
	d.MustCLI(ok2, "run", ".")
	r = d.CLI("", "logs", "same")
	if r.Code != 2 || !strings.Contains(r.Stderr, "ambiguous") || !strings.Contains(r.Stderr, "p1/same") || !strings.Contains(r.Stderr, "Try:") {
		t.Errorf("ambiguous name: exit %d\n%s", r.Code, r.Stderr)
	}
	r = d.CLI("", "kill", "nobody")
	if r.Code != 1 || !strings.Contains(r.Stderr, "no agent named") || !strings.Contains(r.Stderr, "Try:") {
		t.Errorf("unknown agent: exit %d\n%s", r.Code, r.Stderr)
	}
	if r := d.CLI("", "list", "--bogus"); r.Code != 2 {
		t.Errorf("unknown flag: exit %d", r.Code)
	}
	if out := d.MustCLI("", "logs", "p1/same"); !strings.Contains(out, "stopped (Exited)") {
		t.Errorf("logs p1/same:\n%s", out)
	}
}
