package manifest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes through Check and Resolve. Nothing may
// panic; problems must be well-formed and sorted; and whatever Parse and
// Validate accept must resolve to agents with every limit > 0 and values
// Validate promised.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/cortex.yaml")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("version: \"1\"\nproject: p\nagents: [{name: a, entrypoint: a:main, resources: {cpu_limit: 0}}]\n"))
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("<<: {version: \"1\"}\n"))
	dir := f.TempDir()
	if err := os.Symlink("/", filepath.Join(dir, "root")); err != nil {
		f.Fatal(err)
	}
	opts := ValidateOptions{HostCPUs: 8, ProjectDir: dir}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Check(bytes.NewReader(data), "cortex.yaml", opts)
		if err != nil {
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("error is not Problems: %T %v", err, err)
			}
			for i, p := range ps {
				if p.Msg == "" || p.File != "cortex.yaml" {
					t.Fatalf("malformed problem %#v", p)
				}
				if i > 0 && (p.Pos.Line < ps[i-1].Pos.Line || p.Pos.Line == ps[i-1].Pos.Line && p.Pos.Col < ps[i-1].Pos.Col) {
					t.Fatalf("problems not sorted:\n%v", ps)
				}
			}
			if m != nil {
				m.Resolve(daemon) // must not panic either
			}
			return
		}
		if m == nil {
			t.Fatal("nil manifest without error")
		}
		got := m.Resolve(daemon)
		if len(got) == 0 || len(got) != len(m.Agents) {
			t.Fatalf("resolved %d of %d agents", len(got), len(m.Agents))
		}
		for _, a := range got {
			if !(a.Limits.CPU > 0) || a.Limits.CPU > float64(opts.HostCPUs) || a.Limits.Memory < MinMemory || a.Limits.Pids <= 0 || a.Limits.Pids > MaxPids {
				t.Fatalf("limits of %s: %+v", a.Name, a.Limits)
			}
			if !slices.Contains(Runtimes, a.Runtime) || !slices.Contains(RestartPolicies, a.RestartPolicy) || a.MaxRestarts < 0 {
				t.Fatalf("resolved %+v", a)
			}
			if labelProblem(a.Name) != "" || a.Entrypoint == "" {
				t.Fatalf("name/entrypoint %q %q", a.Name, a.Entrypoint)
			}
			for _, h := range a.Capabilities.NetworkAccess {
				if _, err := ParseHostRule(h); err != nil {
					t.Fatalf("accepted host %q: %v", h, err)
				}
			}
			for _, p := range append(slices.Clone(a.Capabilities.FilesystemRead), a.Capabilities.FilesystemWrite...) {
				if strings.HasPrefix(p, "/") || p == ".." || strings.HasPrefix(p, "../") || p == "root" || strings.HasPrefix(p, "root/") {
					t.Fatalf("accepted path %q", p)
				}
			}
		}
	})
}
