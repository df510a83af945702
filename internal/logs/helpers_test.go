package logs

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// waitTimeout is how long tests wait for something that should happen
// quickly; generous because the test machine is shared and loaded.
const waitTimeout = 60 * time.Second

func openStore(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	s, err := Open(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// readAll returns what a non-following Read yields.
func readAll(t testing.TB, s *Store, q Query) []Record {
	t.Helper()
	var out []Record
	if err := s.Read(context.Background(), q, func(r Record) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatalf("Read(%+v): %v", q, err)
	}
	return out
}

// segments lists the segment files of an agent, sorted.
func segments(t testing.TB, dir, project, agent string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, project, agent, "*"+segExt))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

func mustAppend(t testing.TB, s *Store, rec Record) Record {
	t.Helper()
	got, err := s.Append(rec)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return got
}

// checkSeqs fails unless recs have consecutive seqs from first.
func checkSeqs(t testing.TB, recs []Record, first uint64) {
	t.Helper()
	for i, r := range recs {
		if want := first + uint64(i); r.Seq != want {
			t.Fatalf("record %d has seq %d, want %d (gap or reorder)", i, r.Seq, want)
		}
	}
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}
