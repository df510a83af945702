package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

func openTest(t testing.TB, dir string, seg int64) *Log {
	t.Helper()
	l, err := Open(Options{Dir: dir, SegmentSize: seg, Fsync: true})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func apiEntry(i int) Entry {
	return Entry{Kind: KindAPI, API: &APIRecord{RequestID: fmt.Sprint(i), Phase: "done", Identity: "key:ci", Auth: "key", Role: "viewer",
		Method: "GET", Route: "GET /v1/agents", Path: "/v1/agents", Project: "ci-x", Outcome: "ok", Status: 200}}
}

func mustVerify(t testing.TB, dir string, kept ...[]byte) Result {
	t.Helper()
	res, err := Verify(Dir(dir), VerifyOptions{Kept: kept})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return res
}

// TestAppendVerifyRotate writes across several segments and restarts
// and checks the whole log verifies, with checkpoints at every rotation.
func TestAppendVerifyRotate(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, 64<<10)
	for i := 0; i < 600; i++ {
		if _, err := l.Append(apiEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	res := mustVerify(t, dir)
	if res.Segments < 3 {
		t.Fatalf("600 entries in 64 KiB segments made %d segments", res.Segments)
	}
	if res.Unsigned != 0 {
		t.Errorf("Close left %d entries without a checkpoint", res.Unsigned)
	}
	// Reopen and continue.
	l = openTest(t, dir, 64<<10)
	for i := 0; i < 10; i++ {
		if _, err := l.Append(apiEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	n, root := l.Head()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	res2 := mustVerify(t, dir)
	if res2.Entries != n+1 || res2.Entries <= res.Entries {
		t.Errorf("entries %d after reopen (head %d, before %d)", res2.Entries, n, res.Entries)
	}
	_ = root
	for _, name := range mustNames(t, dir) {
		fi, _ := os.Stat(filepath.Join(dir, name))
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	fi, _ := os.Stat(dir)
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("audit dir mode %v", fi.Mode().Perm())
	}
}

// TestTreeMatchesTlog checks the compact-range heads against an
// independent RFC 6962 implementation (the Go checksum database's).
func TestTreeMatchesTlog(t *testing.T) {
	tr := newTree()
	var stored []tlog.Hash
	for i := 0; i < 70; i++ {
		leaf := []byte(fmt.Sprintf("leaf %d", i))
		got := tr.append(leaf)
		hs, err := tlog.StoredHashes(int64(i), leaf, hashReader(stored))
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
		want, err := tlog.TreeHash(int64(i+1), hashReader(stored))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want[:]) {
			t.Fatalf("size %d: head %x, tlog %x", i+1, got, want)
		}
	}
}

type hashReader []tlog.Hash

func (h hashReader) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = h[x]
	}
	return out, nil
}

func mustNames(t testing.TB, dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// smallLog makes a log of a few entries over two segments, with a kept
// checkpoint of its head, and returns its directory and files.
func smallLog(t *testing.T) (string, []byte) {
	dir := t.TempDir()
	l := openTest(t, dir, 64<<10)
	for i := 0; i < 3; i++ {
		if _, err := l.Append(apiEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	l.mu.Lock()
	l.off = l.opts.SegmentSize // force a rotation on the next append
	l.mu.Unlock()
	if _, err := l.Append(Entry{Kind: KindNotice, Notice: "rotate <now> & \"then\""}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(Entry{Kind: KindEvent, Event: &EventRecord{Type: "agent.state", Project: "p", Agent: "a", Detail: []byte(`{"state":"running"}`)}}); err != nil {
		t.Fatal(err)
	}
	cp, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if res := mustVerify(t, dir, cp); res.Segments != 2 {
		t.Fatalf("want 2 segments, got %d", res.Segments)
	}
	return dir, cp
}

func copyDir(t *testing.T, src string) string {
	dst := t.TempDir()
	for _, n := range mustNames(t, src) {
		b, err := os.ReadFile(filepath.Join(src, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestEveryByteFlipDetected changes bytes of every file of a small log
// and checks Verify fails every time, naming a file: every byte of the
// keys one bit, and of the segments every eighth byte, in turn one bit,
// letter case, the high bit and a digit's neighbour, so that over the
// positions every kind of change meets every part of an entry.
func TestEveryByteFlipDetected(t *testing.T) {
	if testing.Short() {
		t.Skip("exhaustive")
	}
	dir, cp := smallLog(t)
	for _, name := range mustNames(t, dir) {
		orig, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		work := copyDir(t, dir)
		path := filepath.Join(work, name)
		seg := strings.HasPrefix(name, "segment-")
		for i := range orig {
			for k, x := range []byte{0x01, 0x20, 0x80, 0x03} {
				if seg && i%32 != 9*k || !seg && k > 0 {
					continue
				}
				b := bytes.Clone(orig)
				b[i] ^= x
				if err := os.WriteFile(path, b, 0o600); err != nil {
					t.Fatal(err)
				}
				_, err := Verify(Dir(work), VerifyOptions{Kept: [][]byte{cp}})
				var p *Problem
				if err == nil {
					t.Fatalf("%s: byte %d ^ %#x (%q -> %q) not detected", name, i, x, orig[i], b[i])
				}
				if !errors.As(err, &p) {
					t.Fatalf("%s: byte %d: error %v is not a Problem", name, i, err)
				}
			}
		}
		if err := os.WriteFile(path, orig, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKeptCheckpointFlipDetected: a kept checkpoint with any byte
// changed does not verify.
func TestKeptCheckpointFlipDetected(t *testing.T) {
	dir, cp := smallLog(t)
	for i := range cp {
		b := bytes.Clone(cp)
		b[i] ^= 0x01
		if _, err := Verify(Dir(dir), VerifyOptions{Kept: [][]byte{b}}); err == nil {
			t.Fatalf("kept checkpoint byte %d changed: not detected", i)
		}
	}
}

func segLines(t *testing.T, path string) [][]byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ls := bytes.SplitAfter(b, []byte("\n"))
	return ls[:len(ls)-1]
}

func writeLines(t *testing.T, path string, ls [][]byte) {
	if err := os.WriteFile(path, bytes.Join(ls, nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDeletionDetected removes each line in turn: any but the newest
// (the checkpoint Close wrote, after the kept one) fails on its own.
func TestDeletionDetected(t *testing.T) {
	dir, _ := smallLog(t)
	segs, _ := Dir(dir).Segments()
	sort.Strings(segs)
	for si, seg := range segs {
		n := len(segLines(t, filepath.Join(dir, seg)))
		for i := 0; i < n; i++ {
			if si == len(segs)-1 && i == n-1 {
				continue // removing the newest entry is truncation: below
			}
			work := copyDir(t, dir)
			path := filepath.Join(work, seg)
			ls := segLines(t, path)
			writeLines(t, path, append(ls[:i:i], ls[i+1:]...))
			if _, err := Verify(Dir(work), VerifyOptions{}); err == nil {
				t.Errorf("%s: line %d removed: not detected", seg, i+1)
			}
		}
	}
	work := copyDir(t, dir)
	if err := os.Remove(filepath.Join(work, segs[0])); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(Dir(work), VerifyOptions{}); err == nil {
		t.Error("first segment removed: not detected")
	}
}

// TestTruncationDetected cuts the newest entries off: the log alone
// still verifies (nothing can show what is gone), a kept checkpoint
// covering them shows it.
func TestTruncationDetected(t *testing.T) {
	dir, cp := smallLog(t)
	kept, err := OpenCheckpoint(cp, mustRead(t, filepath.Join(dir, VerifierFile)))
	if err != nil {
		t.Fatal(err)
	}
	segs, _ := Dir(dir).Segments()
	sort.Strings(segs)
	last := segs[len(segs)-1]
	n := len(segLines(t, filepath.Join(dir, last)))
	for keep := 1; keep < n; keep++ {
		work := copyDir(t, dir)
		path := filepath.Join(work, last)
		writeLines(t, path, segLines(t, path)[:keep])
		res, err := Verify(Dir(work), VerifyOptions{})
		if err != nil {
			t.Fatalf("truncated to %d lines, without a kept checkpoint: %v", keep, err)
		}
		_, err = Verify(Dir(work), VerifyOptions{Kept: [][]byte{cp}})
		if res.Entries < kept.Size && (err == nil || !strings.Contains(err.Error(), "newest")) {
			t.Errorf("truncated to %d entries (kept checkpoint has %d): %v", res.Entries, kept.Size, err)
		}
	}
	work := copyDir(t, dir)
	if err := os.Remove(filepath.Join(work, last)); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(Dir(work), VerifyOptions{Kept: [][]byte{cp}}); err == nil {
		t.Error("newest segment removed: not detected against the kept checkpoint")
	}
}

func mustRead(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRewriteDetected is the careful attacker: change an entry and
// recompute every recorded head after it (no key is needed for that).
// The next signed checkpoint catches it; with the later checkpoints gone
// too, the kept one does.
func TestRewriteDetected(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, 1<<20)
	for i := 0; i < 5; i++ {
		_, _ = l.Append(apiEntry(i))
	}
	cp, _ := l.Checkpoint()
	if err := l.checkpointIfNew(); err != nil {
		t.Fatal(err)
	}
	for i := 5; i < 8; i++ {
		_, _ = l.Append(apiEntry(i))
	}
	_ = l.Close()
	path := filepath.Join(dir, SegmentName(1))
	rewrite := func(ls [][]byte, dropCheckpoints bool) [][]byte {
		tr := newTree()
		var out [][]byte
		for _, ln := range ls {
			e, leaf, err := parseLine(bytes.TrimSuffix(ln, []byte("\n")))
			if err != nil {
				t.Fatal(err)
			}
			if dropCheckpoints && e.Kind == KindCheckpoint {
				continue
			}
			e.Index = tr.size()
			if e.API != nil && e.API.RequestID == "2" {
				e.API.Outcome = "denied" // the change
			}
			e.Root = nil
			leaf, _ = e.leaf()
			out = append(out, line(leaf, tr.append(leaf)))
		}
		return out
	}
	work := copyDir(t, dir)
	writeLines(t, filepath.Join(work, SegmentName(1)), rewrite(segLines(t, path), false))
	if _, err := Verify(Dir(work), VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "checkpoint") {
		t.Errorf("rewrite with checkpoints kept: %v", err)
	}
	work = copyDir(t, dir)
	writeLines(t, filepath.Join(work, SegmentName(1)), rewrite(segLines(t, path), true))
	if _, err := Verify(Dir(work), VerifyOptions{}); err != nil {
		// Expected to pass: nothing signed covers the rewritten entries.
		t.Logf("rewrite without checkpoints: %v", err)
	}
	if _, err := Verify(Dir(work), VerifyOptions{Kept: [][]byte{cp}}); err == nil {
		t.Error("rewrite with every later checkpoint removed: not detected against the kept checkpoint")
	}
}

// TestTornTailRecovered: a crash mid-write leaves half a line; Open
// removes it, says so in the log, and the log verifies.
func TestTornTailRecovered(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, 1<<20)
	for i := 0; i < 3; i++ {
		_, _ = l.Append(apiEntry(i))
	}
	_ = l.Close()
	f, _ := os.OpenFile(filepath.Join(dir, SegmentName(1)), os.O_WRONLY|os.O_APPEND, 0)
	_, _ = f.WriteString(`{"v":1,"i":5,"t":"2`)
	f.Close()
	if _, err := Verify(Dir(dir), VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Fatalf("torn tail before recovery: %v", err)
	}
	l = openTest(t, dir, 1<<20)
	_ = l.Close()
	mustVerify(t, dir)
	es, _ := openList(t, dir, Filter{Kinds: []Kind{KindNotice}})
	if len(es) != 1 || !strings.Contains(es[0].Notice, "incomplete final entry") {
		t.Fatalf("notices: %+v", es)
	}
}

func openList(t *testing.T, dir string, f Filter) ([]Entry, error) {
	l := openTest(t, dir, 1<<20)
	defer l.Close()
	return l.List(f)
}

// TestDamagedTailStartsNewSegment: tampering found at Open does not stop
// the daemon; it starts a new segment, and Verify still reports the
// tampering.
func TestDamagedTailStartsNewSegment(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, 1<<20)
	for i := 0; i < 3; i++ {
		_, _ = l.Append(apiEntry(i))
	}
	_ = l.Close()
	path := filepath.Join(dir, SegmentName(1))
	b, _ := os.ReadFile(path)
	b = bytes.Replace(b, []byte(`"outcome":"ok"`), []byte(`"outcome":"no"`), 1)
	_ = os.WriteFile(path, b, 0o600)
	l = openTest(t, dir, 1<<20)
	if len(l.Damaged()) == 0 {
		t.Fatal("Open did not notice the changed entry")
	}
	if _, err := l.Append(apiEntry(9)); err != nil {
		t.Fatal(err)
	}
	_ = l.Close()
	if _, err := os.Stat(filepath.Join(dir, SegmentName(2))); err != nil {
		t.Fatalf("no new segment: %v", err)
	}
	_, err := Verify(Dir(dir), VerifyOptions{})
	var p *Problem
	if !errors.As(err, &p) || p.File != SegmentName(1) || p.Index != 1 || p.Line != 2 {
		t.Fatalf("want the changed entry 1 (line 2) of segment 1 named, got %v", err)
	}
}

// TestConcurrentAppends: many writers, one fsync per batch; the log
// verifies and holds every entry once.
func TestConcurrentAppends(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, 64<<10)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if _, err := l.Append(apiEntry(i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	_ = l.Close()
	mustVerify(t, dir)
	es, err := openList(t, dir, Filter{Kinds: []Kind{KindAPI}})
	if err != nil || len(es) != 400 {
		t.Fatalf("listed %d api entries (%v), want 400", len(es), err)
	}
}

func TestListFilter(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := now
	l, err := Open(Options{Dir: dir, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		clock = now.Add(time.Duration(i) * time.Minute)
		e := apiEntry(i)
		if i%2 == 0 {
			e.API.Identity, e.API.Project = "uid:0", "prod-y"
		}
		_, _ = l.Append(e)
	}
	got, _ := l.List(Filter{Identity: "key:ci"})
	if len(got) != 5 {
		t.Errorf("identity filter: %d", len(got))
	}
	got, _ = l.List(Filter{Project: "prod-y", Since: now.Add(5 * time.Minute)})
	if len(got) != 2 {
		t.Errorf("project+since filter: %d", len(got))
	}
	got, _ = l.List(Filter{Limit: 3})
	if len(got) != 3 || got[2].API.RequestID != "9" {
		t.Errorf("limit keeps the newest, oldest first: %+v", got)
	}
	_ = l.Close()
}
