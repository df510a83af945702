package bundle

import (
	"strings"
	"testing"
)

func TestIgnore(t *testing.T) {
	tests := []struct {
		name     string
		patterns string
		path     string
		dir      bool
		want     bool
	}{
		// Defaults, with no .cortexignore.
		{"default .git dir", "", ".git", true, true},
		{"default .git contents", "", ".git/objects/ab/cd", false, true},
		{"default .git file is kept", "", ".git", false, false},
		{"default nested .git dir", "", "vendor/lib/.git", true, true},
		{"default *.cortex", "", "out/app.cortex", false, true},
		{"default __pycache__", "", "agents/__pycache__/x.cpython-311.pyc", false, true},
		{"default __pycache__ file is kept", "", "__pycache__", false, false},
		{"default *.pyc", "", "agents/x.pyc", false, true},
		{"plain file kept", "", "agents/x.py", false, false},
		{"default re-included by negation", "!*.cortex\n", "fixtures/a.cortex", false, false},

		// Comments and blanks.
		{"comment line", "# secrets\n", "# secrets", false, false},
		{"escaped hash", "\\#notes\n", "#notes", false, true},
		{"blank lines", "\n\n   \n", "a", false, false},
		{"trailing spaces dropped", "a.txt   \n", "a.txt", false, true},
		{"escaped trailing space kept", "a\\ \n", "a ", false, true},
		{"escaped trailing space does not match bare", "a\\ \n", "a", false, false},
		{"CRLF line", "a.txt\r\n", "a.txt", false, true},

		// Unanchored names match at any depth.
		{"name at root", "secrets.env\n", "secrets.env", false, true},
		{"name nested", "secrets.env\n", "a/b/secrets.env", false, true},
		{"name is whole component", "env\n", "a/secrets.env", false, false},
		{"star", "*.log\n", "a/b/debug.log", false, true},
		{"star does not cross slash", "a*b\n", "a/b", false, false},
		{"star matches dotfiles", "*\n", ".hidden", false, true},
		{"question mark", "?.txt\n", "a.txt", false, true},
		{"question mark one char", "?.txt\n", "ab.txt", false, false},
		{"class", "[ab].txt\n", "b.txt", false, true},
		{"class miss", "[ab].txt\n", "c.txt", false, false},
		{"class range", "file[0-9]\n", "file7", false, true},
		{"negated class bang", "file[!0-9]\n", "filex", false, true},
		{"negated class bang miss", "file[!0-9]\n", "file7", false, false},
		{"negated class caret", "file[^0-9]\n", "file7", false, false},

		// Directory-only patterns.
		{"dir pattern matches dir", "logs/\n", "logs", true, true},
		{"dir pattern excludes contents", "logs/\n", "logs/today.txt", false, true},
		{"dir pattern skips file", "logs/\n", "logs", false, false},
		{"dir pattern nested", "logs/\n", "svc/logs/x", false, true},

		// Anchoring.
		{"leading slash anchors", "/build\n", "build", true, true},
		{"leading slash anchors, not nested", "/build\n", "src/build", true, false},
		{"middle slash anchors", "docs/*.md\n", "docs/a.md", false, true},
		{"middle slash anchors, not nested", "docs/*.md\n", "x/docs/a.md", false, false},
		{"middle slash star one level", "docs/*.md\n", "docs/sub/a.md", false, false},

		// Double star.
		{"leading double star", "**/cache\n", "cache", true, true},
		{"leading double star nested", "**/cache\n", "a/b/cache", true, true},
		{"leading double star then path", "**/cache/x\n", "a/cache/x", false, true},
		{"trailing double star contents", "data/**\n", "data/a/b.bin", false, true},
		{"trailing double star not the dir itself", "data/**\n", "data", true, false},
		{"middle double star zero dirs", "a/**/b\n", "a/b", false, true},
		{"middle double star many dirs", "a/**/b\n", "a/x/y/z/b", false, true},
		{"middle double star anchored", "a/**/b\n", "z/a/x/b", false, false},
		{"double star alone", "**\n", "anything/at/all", false, true},
		{"triple star as double", "a/***/b\n", "a/x/b", false, true},

		// Negation and order.
		{"negation re-includes", "*.log\n!keep.log\n", "keep.log", false, false},
		{"negation then exclude again", "*.log\n!keep.log\nkeep.log\n", "keep.log", false, true},
		{"negation leaves others", "*.log\n!keep.log\n", "drop.log", false, true},
		{"cannot re-include inside excluded dir", "logs/\n!logs/keep.txt\n", "logs/keep.txt", false, true},
		{"re-include dir then its file", "build/\n!build/\n", "build/x", false, false},
		{"escaped bang", "\\!important\n", "!important", false, true},
		{"negate dir-only", "tmp*\n!tmp/\n", "tmp", true, false},
		{"negate dir-only not files", "tmp*\n!tmp/\n", "tmp", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := newIgnorer(strings.NewReader(tc.patterns), ".cortexignore")
			if err != nil {
				t.Fatalf("newIgnorer: %v", err)
			}
			if got := m.ignored(tc.path, tc.dir); got != tc.want {
				t.Errorf("ignored(%q, dir=%v) with %q = %v, want %v", tc.path, tc.dir, tc.patterns, got, tc.want)
			}
		})
	}
}

func TestIgnoreBadPattern(t *testing.T) {
	_, err := newIgnorer(strings.NewReader("ok\n\nbad[\n"), "proj/.cortexignore")
	if err == nil || !strings.Contains(err.Error(), `proj/.cortexignore:3: bad pattern "bad["`) {
		t.Errorf("newIgnorer = %v, want an error naming line 3", err)
	}
}
