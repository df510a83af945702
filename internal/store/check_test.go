package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// corruptMiddlePage overwrites one page in the middle of the file with
// garbage, the way a bad disk sector would.
func corruptMiddlePage(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	pages := fi.Size() / page
	if pages < 4 {
		t.Fatalf("database has %d pages; too small to corrupt in the middle", pages)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	junk := []byte(strings.Repeat("\xde\xad\xbe\xef", page/4))
	if _, err := f.WriteAt(junk, (pages/2)*page); err != nil {
		t.Fatal(err)
	}
}

// TestQuickCheckAndSalvage: a page of garbage in the state DB is found
// by QuickCheck; Salvage keeps the rows on both sides of it and makes a
// sound database.
func TestQuickCheckAndSalvage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	s := open(t, path)
	if err := s.PutProject(ctx, Project{Name: "p", Digest: "sha256:x", BundleDir: "/b", Manifest: []byte(`{}`), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	const n = 3000
	for i := 0; i < n; i++ {
		if err := s.AddEvent(ctx, Event{Project: "p", Agent: "a", Run: i, State: "running", Reason: strings.Repeat("r", 40)}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if p, err := QuickCheck(ctx, path, false); err != nil || len(p) != 0 {
		t.Fatalf("sound database: %v %v", p, err)
	}
	corruptMiddlePage(t, path)
	problems, err := QuickCheck(ctx, path, false)
	if err != nil || len(problems) == 0 {
		t.Fatalf("corrupted database passed quick_check: %v %v", problems, err)
	}
	t.Logf("quick_check: %v", problems)

	dst := filepath.Join(dir, "salvaged.db")
	rep, err := Salvage(ctx, path, dst)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("salvage: %s", rep)
	if rep.Copied["projects"] != 1 {
		t.Errorf("project lost: %s", rep)
	}
	if got := rep.Copied["events"]; got >= n || got < n/2 {
		t.Errorf("events kept %d of %d: want most of them, but not all (a page was garbage)", got, n)
	}
	if p, err := QuickCheck(ctx, dst, false); err != nil || len(p) != 0 {
		t.Fatalf("salvaged database: %v %v", p, err)
	}
	got := open(t, dst)
	defer got.Close()
	if _, err := got.GetProject(ctx, "p"); err != nil {
		t.Errorf("salvaged project: %v", err)
	}
	if _, err := Salvage(ctx, path, dst); err == nil {
		t.Error("salvage over an existing file")
	}
}
