package manifest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/google/go-cmp/cmp"
)

func problemsOf(t *testing.T, err error) Problems {
	t.Helper()
	if err == nil {
		return nil
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("not Problems: %T %v", err, err)
	}
	return ps
}

func mustParse(t *testing.T, yaml string) *Manifest {
	t.Helper()
	m, err := Parse(strings.NewReader(yaml), "cortex.yaml")
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return m
}

const twoAgents = `version: "1"
project: p
defaults:
  runtime: python3.12
agents:
  - name: a
    entrypoint: a:main
  - name: b
    entrypoint: b:main
  - name: c
    runtime: nodejs20
    entrypoint: c.js:main
  - name: d
    runtime: nodejs20
    entrypoint: d.js:main
`

func TestRuntimeAvailable(t *testing.T) {
	m := mustParse(t, twoAgents)
	var asked []string
	err := m.Validate(ValidateOptions{RuntimeAvailable: func(rt string) error {
		asked = append(asked, rt)
		if rt == "python3.12" {
			return fmt.Errorf("no python3.12 interpreter found; install it or set runtimes.python3.12 in /etc/cortex/config.yaml")
		}
		return nil
	}})
	want := Problems{{
		File: "cortex.yaml", Pos: Position{4, 3}, Field: "defaults.runtime",
		Msg: "no python3.12 interpreter found", Fix: "install it or set runtimes.python3.12 in /etc/cortex/config.yaml",
	}}
	if diff := cmp.Diff(want, problemsOf(t, err)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	// Once for defaults.runtime, once per agent that names its own.
	if diff := cmp.Diff([]string{"python3.12", "nodejs20", "nodejs20"}, asked); diff != "" {
		t.Errorf("asked (-want +got):\n%s", diff)
	}
}

func TestDefaultRuntime(t *testing.T) {
	const y = `version: "1"
project: p
agents:
  - name: py
    entrypoint: agents.py:main
  - name: js
    entrypoint: agents/js.js:main
  - name: bad
    entrypoint: not/an:entry
`
	tests := []struct {
		name       string
		opts       ValidateOptions
		wantFields []string
	}{
		{name: "unknown default accepts either form", opts: ValidateOptions{}, wantFields: []string{"agents[2].entrypoint"}},
		{name: "python default", opts: ValidateOptions{DefaultRuntime: "python3.11"}, wantFields: []string{"agents[1].entrypoint", "agents[2].entrypoint"}},
		{name: "node default", opts: ValidateOptions{DefaultRuntime: "nodejs20"}, wantFields: []string{"agents[0].entrypoint", "agents[2].entrypoint"}},
		{name: "unavailable default reported once per agent", opts: ValidateOptions{DefaultRuntime: "nodejs20",
			RuntimeAvailable: func(string) error { return errors.New("no node; install it") }},
			wantFields: []string{"agents[0]", "agents[0].entrypoint", "agents[1]", "agents[2]", "agents[2].entrypoint"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, p := range problemsOf(t, mustParse(t, y).Validate(tc.opts)) {
				got = append(got, p.Field)
			}
			if diff := cmp.Diff(tc.wantFields, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestHostCPUs(t *testing.T) {
	const y = "version: \"1\"\nproject: p\ndefaults:\n  resources: {cpu_limit: 3}\nagents:\n  - name: a\n    entrypoint: a:main\n    resources: {cpu_limit: 3.5}\n"
	tests := []struct {
		cpus int
		want []string
	}{
		{0, nil},
		{4, nil},
		{3, []string{"agents[0].resources.cpu_limit"}},
		{1, []string{"defaults.resources.cpu_limit", "agents[0].resources.cpu_limit"}},
		{2, []string{"defaults.resources.cpu_limit", "agents[0].resources.cpu_limit"}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.cpus), func(t *testing.T) {
			var got []string
			for _, p := range problemsOf(t, mustParse(t, y).Validate(ValidateOptions{HostCPUs: tc.cpus})) {
				got = append(got, p.Field)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestProjectDirSymlinks builds a project with links inside and outside
// and checks which filesystem paths Validate refuses.
func TestProjectDirSymlinks(t *testing.T) {
	outside := t.TempDir()
	proj := t.TempDir()
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Join(proj, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, name string) {
		if err := os.Symlink(target, filepath.Join(proj, name)); err != nil {
			t.Fatal(err)
		}
	}
	mk("data/sub")
	mk("real")
	link(outside, "abs-out")                    // absolute, outside
	link("../", "rel-out")                      // relative, outside
	link("data", "in")                          // relative, inside
	link(filepath.Join(proj, "real"), "abs-in") // absolute, inside
	link("/nonexistent-cortex-test", "dangling-out")
	link("real/missing", "dangling-in")
	link("loop1", "loop2")
	link("loop2", "loop1")
	link("../"+filepath.Base(proj)+"/data", "out-and-back") // leaves and re-enters: ends inside
	mk("deep")
	link("../..", "deep/up")
	if err := os.WriteFile(filepath.Join(proj, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		path    string
		wantErr string // substring; "" = allowed
	}{
		{"./data", ""},
		{"data/sub/new/dir", ""},
		{"in/sub", ""},
		{"abs-in", ""},
		{"dangling-in", ""},
		{"out-and-back", ""},
		{"not-yet", ""},
		{"file/below", ""},
		{"abs-out", "through the symlink abs-out"},
		{"abs-out/x/y", "through the symlink abs-out"},
		{"rel-out", "through the symlink rel-out"},
		{"dangling-out", "through the symlink dangling-out"},
		{"deep/up/etc", "through the symlink deep/up"},
		{"loop1", "too many levels of symbolic links"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			m := &Manifest{Version: "1", Project: "p", Agents: []Agent{{Name: "a", Entrypoint: "a:main",
				Capabilities: Capabilities{FilesystemWrite: []string{tc.path}}}}}
			ps := problemsOf(t, m.Validate(ValidateOptions{ProjectDir: proj}))
			switch {
			case tc.wantErr == "" && len(ps) > 0:
				t.Fatalf("refused: %v", ps)
			case tc.wantErr != "" && (len(ps) != 1 || !strings.Contains(ps[0].String(), tc.wantErr)):
				t.Fatalf("got %v, want one problem containing %q", ps, tc.wantErr)
			case tc.wantErr != "" && ps[0].Field != "agents[0].capabilities.filesystem.write[0]":
				t.Fatalf("field %q", ps[0].Field)
			}
		})
	}
	// The same paths, checked without a project dir, are only checked lexically.
	m := &Manifest{Version: "1", Project: "p", Agents: []Agent{{Name: "a", Entrypoint: "a:main",
		Capabilities: Capabilities{FilesystemRead: []string{"abs-out", "rel-out"}}}}}
	if err := m.Validate(ValidateOptions{}); err != nil {
		t.Fatalf("lexical check refused symlinks: %v", err)
	}
}

func TestProblemsError(t *testing.T) {
	m, err := Parse(strings.NewReader("version: \"1\"\nproject: p\nagents:\n  - name: a\n    entrypiont: a:main\n"), "x/cortex.yaml")
	if m == nil {
		t.Fatal("manifest is nil although the YAML parsed")
	}
	if !errdefs.IsInvalidArgument(err) || errdefs.ExitCode(err) != errdefs.ExitInvalid {
		t.Errorf("category %v", errdefs.CategoryOf(err))
	}
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 {
		t.Fatalf("errors.As: %v", err)
	}
	want := `x/cortex.yaml:5:5: agents[0].entrypiont: unknown field; did you mean "entrypoint"?`
	if err.Error() != want {
		t.Errorf("got  %s\nwant %s", err.Error(), want)
	}
	// Validate stays silent about the field Parse reported, and reports
	// the missing entrypoint at the agent.
	vps := problemsOf(t, m.Validate(ValidateOptions{}))
	if len(vps) != 1 || vps[0].Field != "agents[0].entrypoint" || vps[0].Pos != (Position{4, 5}) {
		t.Errorf("validate: %v", vps)
	}
}

// TestValidateSkipsParsed checks that Validate adds nothing about fields
// Parse could not decode.
func TestValidateSkipsParsed(t *testing.T) {
	m, err := Parse(strings.NewReader("version: [1]\nproject: {a: b}\nagents: {a: b}\n"), "cortex.yaml")
	if len(problemsOf(t, err)) != 3 {
		t.Fatalf("parse: %v", err)
	}
	if err := m.Validate(ValidateOptions{}); err != nil {
		t.Errorf("validate repeated parse problems: %v", err)
	}
}

func TestValidateInCode(t *testing.T) {
	m := &Manifest{Version: "1", Project: "p", Agents: []Agent{
		{Name: "a", Entrypoint: "a:main", Env: []EnvVar{{"X", "1"}, {"X", "2"}}, Resources: Resources{CPULimit: -1}},
	}}
	ps := problemsOf(t, m.Validate(ValidateOptions{}))
	var got []string
	for _, p := range ps {
		got = append(got, p.String())
	}
	want := []string{
		"agents[0].env.X: set twice; keep one",
		"agents[0].resources.cpu_limit: -1 is below the minimum of 0.01 core; write at least 0.01, e.g. 0.5",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestPos(t *testing.T) {
	m, _ := Check(mustOpen(t, "testdata/seed-swarm/cortex.yaml"), "cortex.yaml", ValidateOptions{})
	tests := map[string]Position{
		"":                                      {1, 1},
		"version":                               {1, 1},
		"defaults.resources.mem_limit":          {5, 31},
		"global_capabilities.bus.broker":        {9, 5},
		"agents[0]":                             {12, 5},
		"agents[0].resources.pids_limit":        {16, 51},
		"agents[0].capabilities.network.access": {20, 9},
		"agents[0].capabilities.network.access[2]": {20, 62},
		"agents[0].capabilities[3]":                {23, 9},
		"agents[0].env.CORTEX_SESSION_ID":          {31, 7},
		"agents[1]":                                {},
		"nope":                                     {},
	}
	for field, want := range tests {
		if got := m.Pos(field); got != want {
			t.Errorf("Pos(%q) = %v, want %v", field, got, want)
		}
	}
}

func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	const y = "version: \"1\"\nproject: p\nagents: [{name: a, entrypoint: a:main}]\n"
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("yaml/cortex.yaml", y)
	write("yaml/cortex.yml", "broken: [")
	write("yml/cortex.yml", y)
	big := write("big/cortex.yaml", "version: \"1\"\n# "+strings.Repeat("x", MaxSize)+"\n")
	if err := os.MkdirAll(filepath.Join(dir, "none"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		check      func(error) bool
		source     string
	}{
		{name: "dir prefers cortex.yaml", path: filepath.Join(dir, "yaml"), source: filepath.Join(dir, "yaml", "cortex.yaml")},
		{name: "dir falls back to cortex.yml", path: filepath.Join(dir, "yml"), source: filepath.Join(dir, "yml", "cortex.yml")},
		{name: "file", path: filepath.Join(dir, "yml", "cortex.yml"), source: filepath.Join(dir, "yml", "cortex.yml")},
		{name: "missing file", path: filepath.Join(dir, "nope.yaml"), check: errdefs.IsNotFound},
		{name: "dir without manifest", path: filepath.Join(dir, "none"), check: errdefs.IsNotFound},
		{name: "too big", path: big, check: func(err error) bool {
			return errdefs.IsInvalidArgument(err) && strings.Contains(err.Error(), "larger than 1024 KiB")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Load(tc.path)
			if tc.check != nil {
				if err == nil || !tc.check(err) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Source != tc.source || m.Agents[0].Name != "a" {
				t.Errorf("source %q agents %+v", m.Source, m.Agents)
			}
		})
	}
}
