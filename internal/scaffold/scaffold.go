// Package scaffold writes new Cortex projects from the templates it
// embeds (cortex init): python, node, swarm and llm, each a manifest,
// agent code, its dependency file and a README that `cortex run DIR` runs
// at once. Files named *.tmpl are text/template files (the suffix is
// dropped); the rest are copied as they are. It must not overwrite
// anything: a directory that already holds one of the files is refused
// before anything is written.
package scaffold

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/cortexrt/cortex/internal/errdefs"
)

//go:embed all:templates
var templates embed.FS

// Templates lists the template names, with what each writes.
var Templates = []struct{ Name, Summary string }{
	{"python", "one Python agent, requirements.txt for its packages (the default)"},
	{"node", "one Node.js agent, package.json for its packages"},
	{"swarm", "two Python agents talking over the bus"},
	{"llm", "a Python agent calling an LLM through the gateway with the openai client, with a recorded answer so it runs offline"},
}

// Names returns the template names.
func Names() []string {
	out := make([]string, len(Templates))
	for i, t := range Templates {
		out[i] = t.Name
	}
	return out
}

// Data is what templates are rendered with.
type Data struct {
	// Project is the project's name (a DNS label).
	Project string
}

// Files renders template name for d: file paths (slash-separated,
// relative) to contents, and which are executable.
func Files(name string, d Data) (map[string][]byte, error) {
	known := false
	for _, t := range Templates {
		known = known || t.Name == name
	}
	if !known {
		return nil, errdefs.New(errdefs.InvalidArgument, "no template %q; use one of %s", name, strings.Join(Names(), ", "))
	}
	root := "templates/" + name
	out := map[string][]byte{}
	err := fs.WalkDir(templates, root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := templates.ReadFile(p)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, root+"/")
		if strings.HasSuffix(rel, ".tmpl") {
			rel = strings.TrimSuffix(rel, ".tmpl")
			t, err := template.New(rel).Option("missingkey=error").Parse(string(b))
			if err != nil {
				return fmt.Errorf("template %s: %w", p, err)
			}
			var buf bytes.Buffer
			if err := t.Execute(&buf, d); err != nil {
				return fmt.Errorf("template %s: %w", p, err)
			}
			b = buf.Bytes()
		}
		out[rel] = b
		return nil
	})
	return out, err
}

// Write writes template name into dir (made when missing) and returns
// the paths written, sorted. If dir already holds any of them, nothing
// is written and the error names them.
func Write(dir, name string, d Data) ([]string, error) {
	files, err := Files(name, d)
	if err != nil {
		return nil, err
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var exist []string
	for _, p := range paths {
		if _, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(p))); err == nil {
			exist = append(exist, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	if len(exist) > 0 {
		return nil, errdefs.WithHint(errdefs.New(errdefs.AlreadyExists, "%s already holds %s", dir, strings.Join(exist, ", ")),
			"pick an empty or new directory: cortex init DIR")
	}
	var made []string
	undo := func() {
		for i := len(made) - 1; i >= 0; i-- {
			os.Remove(made[i])
		}
	}
	mkdir := func(p string) error {
		var parts []string
		for q := p; ; q = filepath.Dir(q) {
			if _, err := os.Lstat(q); err == nil {
				break
			}
			parts = append(parts, q)
			if filepath.Dir(q) == q {
				break
			}
		}
		for i := len(parts) - 1; i >= 0; i-- {
			if err := os.Mkdir(parts[i], 0o755); err != nil {
				return err
			}
			made = append(made, parts[i])
		}
		return nil
	}
	for _, p := range paths {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := mkdir(filepath.Dir(full)); err != nil {
			undo()
			return nil, err
		}
		f, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			undo()
			return nil, err
		}
		made = append(made, full)
		_, werr := f.Write(files[p])
		if cerr := f.Close(); werr != nil || cerr != nil {
			undo()
			return nil, errors.Join(werr, cerr)
		}
	}
	return paths, nil
}

// ProjectName makes a project name (a DNS label) of a directory name:
// lowercase letters, digits and '-', at most 63.
func ProjectName(dir string) string {
	base := strings.ToLower(path.Base(filepath.ToSlash(filepath.Clean(dir))))
	var b strings.Builder
	for _, r := range base {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 63 {
		s = strings.Trim(s[:63], "-")
	}
	if s == "" {
		return "my-project"
	}
	return s
}
