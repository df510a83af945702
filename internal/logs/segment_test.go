package logs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestScanBackward(t *testing.T) {
	cases := []struct {
		name    string
		content string
		block   int
		want    []string
	}{
		{"empty", "", 4, nil},
		{"one line", "abc\n", 4, []string{"abc"}},
		{"lines across blocks", "one\ntwo\nthree\nfour\n", 3, []string{"four", "three", "two", "one"}},
		{"long line many blocks", "short\n" + strings.Repeat("L", 50) + "\nx\n", 7, []string{"x", strings.Repeat("L", 50), "short"}},
		{"torn last line skipped", "a\nb\ntorn-line-without-newline", 4, []string{"b", "a"}},
		{"only a torn line", "no newline at all", 5, nil},
		{"empty lines", "\n\na\n", 2, []string{"a", "", ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "seg")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			var got []string
			if err := scanBackward(path, tc.block, func(l []byte) bool { got = append(got, string(l)); return false }); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			// Stopping early returns only what was asked for.
			n := 0
			_ = scanBackward(path, tc.block, func([]byte) bool { n++; return true })
			if want := min(1, len(tc.want)); n != want {
				t.Errorf("stop after first: %d calls, want %d", n, want)
			}
		})
	}
	if err := scanBackward(filepath.Join(t.TempDir(), "missing"), 4, func([]byte) bool { t.Error("called"); return true }); err != nil {
		t.Errorf("missing file: %v", err)
	}
}

func TestParseSegName(t *testing.T) {
	cases := []struct {
		name string
		want uint64
		ok   bool
	}{
		{segName(1), 1, true},
		{segName(123456789012345), 123456789012345, true},
		{"000000000000.jsonl", 0, false},
		{"12.jsonl.tmp", 0, false},
		{"x1.jsonl", 0, false},
		{".jsonl", 0, false},
		{"+1.jsonl", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseSegName(tc.name)
			if got != tc.want || ok != tc.ok {
				t.Errorf("parseSegName(%q) = %d, %v", tc.name, got, ok)
			}
		})
	}
}
