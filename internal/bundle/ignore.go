package bundle

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// IgnoreFile is the name of the file, at the project root, listing what
// Create leaves out.
const IgnoreFile = ".cortexignore"

// defaultIgnore is applied before the project's .cortexignore, which can
// re-include any of these with a "!" pattern.
var defaultIgnore = []string{".git/", "*.cortex", "__pycache__/", "*.pyc"}

// ignorer matches paths against gitignore-style rules: blank lines and
// "#" comments are skipped; "*" and "?" match within one path component,
// "[...]" is a character class ("[!...]" or "[^...]" negated); "**/" at the
// start, "/**/" in the middle and "/**" at the end match any number of
// directories (at the end: at least one path component); a trailing "/"
// matches directories only; a pattern with a "/" other than a trailing one
// is anchored at the project root (a leading "/" only anchors), one without
// matches a name at any depth; "!" negates (re-includes); "\" escapes the
// next character, so "\#" and "\!" start a pattern with "#" or "!" and
// trailing spaces are dropped unless escaped. The last matching rule wins,
// and, as in git, nothing inside an excluded directory can be re-included.
type ignorer struct {
	rules []ignoreRule
}

type ignoreRule struct {
	segs    []string // path.Match patterns; "**" matches any run of components
	negate  bool
	dirOnly bool
}

// newIgnorer returns the default rules followed by those read from r
// (which may be nil). source names r in errors.
func newIgnorer(r io.Reader, source string) (*ignorer, error) {
	m := &ignorer{}
	for _, p := range defaultIgnore {
		if err := m.add(p); err != nil {
			return nil, fmt.Errorf("default ignore pattern %q: %w", p, err)
		}
	}
	if r == nil {
		return m, nil
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if err := m.add(sc.Text()); err != nil {
			return nil, errdefs.New(errdefs.InvalidArgument, "%s:%d: %v", source, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, errdefs.New(errdefs.InvalidArgument, "read %s: %v", source, err)
	}
	return m, nil
}

// add parses one line of an ignore file.
func (m *ignorer) add(line string) error {
	line = strings.TrimSuffix(line, "\r")
	// Trailing spaces are dropped unless escaped with a backslash.
	for strings.HasSuffix(line, " ") && !strings.HasSuffix(line, "\\ ") {
		line = line[:len(line)-1]
	}
	if line == "" || line[0] == '#' {
		return nil
	}
	var r ignoreRule
	if line[0] == '!' {
		r.negate = true
		line = line[1:]
	}
	if strings.HasSuffix(line, "/") && !strings.HasSuffix(line, "\\/") {
		r.dirOnly = true
		line = strings.TrimRight(line, "/")
	}
	anchored := strings.Contains(line, "/")
	line = strings.TrimLeft(line, "/")
	if line == "" {
		return nil
	}
	if !anchored {
		r.segs = append(r.segs, "**")
	}
	for s := range strings.SplitSeq(line, "/") {
		switch {
		case s == "":
			continue
		case s == "**":
			if len(r.segs) > 0 && r.segs[len(r.segs)-1] == "**" {
				continue
			}
		default:
			s = gitClass(s)
			if _, err := path.Match(s, ""); err != nil {
				return fmt.Errorf("bad pattern %q: %w", line, err)
			}
		}
		r.segs = append(r.segs, s)
	}
	m.rules = append(m.rules, r)
	return nil
}

// gitClass turns the "[!...]" negated classes of gitignore into path.Match's
// "[^...]".
func gitClass(s string) string {
	if !strings.Contains(s, "[!") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		b.WriteByte(c)
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == '[' && i+1 < len(s) && s[i+1] == '!':
			b.WriteByte('^')
			i++
		}
	}
	return b.String()
}

// match reports whether the rules exclude rel (a slash path relative to the
// project root) by themselves, ignoring its parent directories. The walker
// prunes excluded directories, so this is all it needs.
func (m *ignorer) match(rel string, isDir bool) bool {
	comps := strings.Split(rel, "/")
	excluded := false
	for _, r := range m.rules {
		if r.dirOnly && !isDir {
			continue
		}
		if r.negate == !excluded {
			// The rule could not change the outcome.
			continue
		}
		if matchSegs(r.segs, comps) {
			excluded = !r.negate
		}
	}
	return excluded
}

// ignored reports whether rel is left out of a bundle: it or one of its
// parent directories is excluded.
func (m *ignorer) ignored(rel string, isDir bool) bool {
	for i := 0; i < len(rel); i++ {
		if rel[i] == '/' && m.match(rel[:i], true) {
			return true
		}
	}
	return m.match(rel, isDir)
}

// matchSegs matches path components against pattern segments.
func matchSegs(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			if len(pat) == 1 {
				return len(name) > 0
			}
			for i := 0; i <= len(name); i++ {
				if matchSegs(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}
