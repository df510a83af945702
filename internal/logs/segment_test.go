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

// FuzzRecoverSegment feeds arbitrary bytes as the newest segment of an
// agent left by a crashed daemon: opening, reading and appending must
// never fail or panic, and the new record continues after every valid one.
func FuzzRecoverSegment(f *testing.F) {
	valid := func(seq uint64, msg string) string {
		r := Record{Seq: seq, Project: "p", Agent: "a", Message: msg}
		b, _ := appendRecord(nil, &r)
		return string(b)
	}
	f.Add(valid(5, "x") + valid(6, "y"))
	f.Add(valid(5, "x") + `{"time":"0001-01-01T00:00:00Z","seq":6,"pro`)
	f.Add("garbage\n" + valid(9, "z") + "\x00\x00\x00")
	f.Add(valid(7, "a")[:20])
	f.Add("")
	f.Fuzz(func(t *testing.T, content string) {
		dir := t.TempDir()
		seg := filepath.Join(dir, "p", "a", segName(5))
		if err := os.MkdirAll(filepath.Dir(seg), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(seg, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		s, err := Open(Options{Dir: dir}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		before := readAll(t, s, Query{Project: "p", Agent: "a"})
		rec, err := s.Append(Record{Project: "p", Agent: "a", Message: "new"})
		if err != nil {
			t.Fatalf("Append after recovery: %v", err)
		}
		if rec.Seq < 5 {
			t.Fatalf("seq %d below the segment's first seq", rec.Seq)
		}
		after := readAll(t, s, Query{Project: "p", Agent: "a"})
		if len(after) == 0 || after[len(after)-1].Seq != rec.Seq || after[len(after)-1].Message != "new" {
			t.Fatalf("new record not read back last: %+v", after)
		}
		if len(before) > 0 && before[len(before)-1].Seq >= rec.Seq {
			t.Fatalf("new seq %d does not follow the last stored seq %d", rec.Seq, before[len(before)-1].Seq)
		}
		if len(after) < len(before)+1 {
			t.Fatalf("records lost: %d before, %d after append", len(before), len(after))
		}
	})
}
