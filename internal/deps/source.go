package deps

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/manifest"
)

// Default dependency files, at the project's root.
const (
	Requirements = "requirements.txt"
	PyProject    = "pyproject.toml"
	PackageJSON  = "package.json"
)

// Source is where one agent's packages come from.
type Source struct {
	// Kind is manifest.DepsPython or manifest.DepsNode.
	Kind string
	// File is the dependency file, slash-separated, relative to the
	// project directory.
	File string
	// Scripts lets npm run install scripts.
	Scripts bool
	// Explicit: the manifest named the file.
	Explicit bool
}

// SourceOf returns the dependency file of agent a (runtime resolved) in
// projectDir, or nil when it has none: the file its dependencies: key
// names (which must exist), else, for a Python agent, requirements.txt or
// a pyproject.toml with [project] dependencies, for a Node agent a
// package.json with dependencies. A file that declares no package gives
// nil too.
func SourceOf(projectDir string, a manifest.ResolvedAgent) (*Source, error) {
	if d := a.Dependencies; d != nil {
		if d.None {
			return nil, nil
		}
		rel := path.Clean(d.File)
		src := &Source{Kind: manifest.DependencyKind(rel), File: rel, Scripts: d.Scripts, Explicit: true}
		if _, err := os.Stat(filepath.Join(projectDir, filepath.FromSlash(rel))); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "agent %s: dependencies: %s does not exist in %s", a.Name, rel, projectDir),
					"create it, or fix the path in cortex.yaml")
			}
			return nil, err
		}
		if ok, err := declares(projectDir, src); err != nil || !ok {
			return nil, err
		}
		return src, nil
	}
	var cands []*Source
	switch {
	case manifest.IsPython(a.Runtime):
		cands = []*Source{{Kind: manifest.DepsPython, File: Requirements}, {Kind: manifest.DepsPython, File: PyProject}}
	case manifest.IsNode(a.Runtime):
		cands = []*Source{{Kind: manifest.DepsNode, File: PackageJSON}}
	}
	for _, c := range cands {
		if _, err := os.Stat(filepath.Join(projectDir, c.File)); err != nil {
			continue
		}
		ok, err := declares(projectDir, c)
		if err != nil {
			return nil, err
		}
		if ok {
			return c, nil
		}
	}
	return nil, nil
}

// declares reports whether the dependency file declares any package.
func declares(projectDir string, s *Source) (bool, error) {
	full := filepath.Join(projectDir, filepath.FromSlash(s.File))
	data, err := os.ReadFile(full)
	if err != nil {
		return false, err
	}
	switch {
	case s.Kind == manifest.DepsNode:
		deps, err := packageDeps(s.File, data)
		return len(deps) > 0, err
	case path.Base(s.File) == PyProject:
		deps, err := pyprojectDeps(s.File, data)
		return len(deps) > 0, err
	}
	return requirementLines(data), nil
}

// packageDeps returns the names in package.json's dependencies.
func packageDeps(file string, data []byte) ([]string, error) {
	var pj struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := json.Unmarshal(data, &pj); err != nil {
		return nil, errdefs.New(errdefs.InvalidArgument, "%s: %v; fix the JSON", file, err)
	}
	names := make([]string, 0, len(pj.Dependencies))
	for n := range pj.Dependencies {
		names = append(names, n)
	}
	return names, nil
}

// pyprojectDeps returns [project] dependencies of a pyproject.toml.
func pyprojectDeps(file string, data []byte) ([]string, error) {
	var pp struct {
		Project struct {
			Dependencies []string `toml:"dependencies"`
		} `toml:"project"`
	}
	if _, err := toml.Decode(string(data), &pp); err != nil {
		return nil, errdefs.New(errdefs.InvalidArgument, "%s: %v; fix the TOML", file, err)
	}
	return pp.Project.Dependencies, nil
}

// pipGlobalOption matches requirement-file lines that are options, not
// requirements.
var pipGlobalOption = regexp.MustCompile(`^(-i|--index-url|--extra-index-url|-f|--find-links|--no-index|--trusted-host|--pre|--prefer-binary|--only-binary|--no-binary|--require-hashes|--use-feature)\b`)

// requirementLines reports whether a requirements file holds at least
// one requirement (or includes another file).
func requirementLines(data []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if i := strings.Index(l, " #"); i >= 0 {
			l = strings.TrimSpace(l[:i])
		}
		if l == "" || strings.HasPrefix(l, "#") || pipGlobalOption.MatchString(l) {
			continue
		}
		return true
	}
	return false
}

// hashPinned reports whether a requirements file pins hashes, so pip must
// run with --require-hashes.
func hashPinned(data []byte) bool {
	return regexp.MustCompile(`(?m)--hash[= ]`).Match(data)
}

func sourceErr(s *Source, format string, args ...any) error {
	return errdefs.New(errdefs.InvalidArgument, "%s: %s", s.File, fmt.Sprintf(format, args...))
}
