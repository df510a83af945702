package logs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// The crash test re-executes the test binary as a "daemon" that collects
// its stdin into a store and reports each written seq on stdout.
const childEnv = "CORTEX_LOGS_TEST_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(childDaemon(dir))
	}
	os.Exit(m.Run())
}

func childDaemon(dir string) int {
	s, err := Open(Options{Dir: dir, SegmentSize: 256 << 10, Segments: 1000}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	out := bufio.NewWriter(os.Stdout)
	s.afterWrite = func(_, _ string, last uint64) {
		fmt.Fprintf(out, "%d\n", last)
		out.Flush()
	}
	if err := s.Collect(context.Background(), os.Stdin, Meta{Project: "p", Agent: "a"}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	select {} // wait to be killed
}

// TestCrashKill9 kills a collecting daemon with SIGKILL mid-stream and
// checks that a new store on the same directory has every record the
// dead one had written, and continues the sequence.
func TestCrashKill9(t *testing.T) {
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		bw := bufio.NewWriter(stdin)
		for i := 1; ; i++ {
			if _, err := fmt.Fprintf(bw, "line %d %s\n", i, strings.Repeat("z", i%200)); err != nil {
				return // the child was killed
			}
			if i%100 == 0 && bw.Flush() != nil {
				return
			}
		}
	})
	defer stdin.Close()

	// Kill once the child has acknowledged a good number of records, while
	// lines are still flowing.
	var acked uint64
	sc := bufio.NewScanner(stdout)
	for acked < 30000 && sc.Scan() {
		if n, err := strconv.ParseUint(sc.Text(), 10, 64); err == nil {
			acked = n
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	stdin.Close()
	if acked < 30000 {
		t.Fatalf("child acknowledged only %d records", acked)
	}

	s := openStore(t, Options{Dir: dir, SegmentSize: 256 << 10, Segments: 1000})
	recs := readAll(t, s, Query{Project: "p", Agent: "a"})
	if uint64(len(recs)) < acked {
		t.Fatalf("after kill -9: %d records stored, but %d were acknowledged", len(recs), acked)
	}
	checkSeqs(t, recs, 1)
	for i, r := range recs {
		if want := fmt.Sprintf("line %d ", i+1); !strings.HasPrefix(r.Message, want) {
			t.Fatalf("record %d = %q, want prefix %q", r.Seq, r.Message, want)
		}
	}
	next := mustAppend(t, s, Record{Project: "p", Agent: "a", Message: "after restart"})
	if next.Seq != uint64(len(recs))+1 {
		t.Errorf("after restart seq = %d, want %d", next.Seq, len(recs)+1)
	}
	t.Logf("acknowledged %d, stored %d", acked, len(recs))
}

// TestRotation checks, after every write, that an agent never has more
// than Segments files, and that the newest records are all kept.
func TestRotation(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, SegmentSize: 4096, Segments: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	maxSeen := 0
	s.afterWrite = func(p, a string, _ uint64) {
		maxSeen = max(maxSeen, len(segments(t, dir, p, a)))
	}
	var input strings.Builder
	for i := 1; i <= 2000; i++ {
		fmt.Fprintf(&input, "message %d\n", i)
	}
	// Small reads make many batches, so rotation happens between and
	// within batches.
	if err := s.Collect(context.Background(), &chunkReader{s: input.String(), n: 1000}, Meta{Project: "p", Agent: "a"}); err != nil {
		t.Fatal(err)
	}
	if maxSeen == 0 || maxSeen > 3 {
		t.Fatalf("max segment files seen = %d, want 1..3", maxSeen)
	}
	files := segments(t, dir, "p", "a")
	for _, f := range files {
		if sz := fileSize(t, f); sz > 4096 {
			t.Errorf("%s is %d bytes, over SegmentSize", f, sz)
		}
	}
	recs := readAll(t, s, Query{Project: "p", Agent: "a"})
	if len(recs) == 0 || recs[len(recs)-1].Seq != 2000 {
		t.Fatalf("newest record missing: %d records", len(recs))
	}
	checkSeqs(t, recs, recs[0].Seq)
	for _, r := range recs {
		if r.Message != fmt.Sprintf("message %d", r.Seq) {
			t.Fatalf("record %d = %q", r.Seq, r.Message)
		}
	}
	// Older segments were only rotated when the next record (< 200 bytes
	// here) would not fit.
	for _, f := range files[:len(files)-1] {
		if sz := fileSize(t, f); sz < 4096-200 {
			t.Errorf("%s rotated at %d bytes, well before SegmentSize", f, sz)
		}
	}
	st, err := s.Stats("p", "a")
	if err != nil {
		t.Fatal(err)
	}
	want := AgentStats{Records: uint64(len(recs)), Segments: len(files), FirstSeq: recs[0].Seq, LastSeq: 2000}
	st.Bytes = 0
	if st != want {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
	if first := filepath.Base(files[0]); first != segName(recs[0].Seq) {
		t.Errorf("oldest segment %s does not start at seq %d", first, recs[0].Seq)
	}
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	s string
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.s == "" {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), c.n)], c.s)
	c.s = c.s[k:]
	return k, nil
}

func TestOversizedRecordGetsOwnSegment(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, Options{Dir: dir, SegmentSize: 200, Segments: 10})
	big := strings.Repeat("b", 500)
	for _, m := range []string{"small", big, "small again"} {
		mustAppend(t, s, Record{Project: "p", Agent: "a", Message: m})
	}
	if n := len(segments(t, dir, "p", "a")); n != 3 {
		t.Errorf("%d segments, want 3 (the big record alone in one)", n)
	}
	if got := readAll(t, s, Query{Project: "p", Agent: "a"}); len(got) != 3 || got[1].Message != big {
		t.Errorf("records = %d", len(got))
	}
}

func TestRestartContinuesSeq(t *testing.T) {
	dir := t.TempDir()
	s1, err := Open(Options{Dir: dir, SegmentSize: 1024}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		mustAppend(t, s1, Record{Project: "p", Agent: "a", Message: fmt.Sprint(i), Run: 0})
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Append(Record{Project: "p", Agent: "a"}); !errdefs.IsUnavailable(err) {
		t.Errorf("Append after Close = %v, want unavailable", err)
	}
	s2 := openStore(t, Options{Dir: dir, SegmentSize: 1024})
	rec := mustAppend(t, s2, Record{Project: "p", Agent: "a", Message: "again", Run: 1})
	if rec.Seq != 51 {
		t.Errorf("seq after restart = %d, want 51", rec.Seq)
	}
	recs := readAll(t, s2, Query{Project: "p", Agent: "a"})
	checkSeqs(t, recs, recs[0].Seq)
	if last := recs[len(recs)-1]; last.Message != "again" || last.Run != 1 {
		t.Errorf("last = %+v", last)
	}
}

// TestRecoverTornSegment simulates a crash that left the newest segment
// in a bad state (without closing the first store) and checks that a new
// store skips the damage and continues.
func TestRecoverTornSegment(t *testing.T) {
	cases := []struct {
		name string
		// damage changes the newest segment file and returns the seq of the
		// last record that must survive.
		damage  func(t *testing.T, newest string) uint64
		wantSeq uint64 // first seq of the new store
	}{
		{"last line cut mid-way", func(t *testing.T, newest string) uint64 {
			if err := os.Truncate(newest, fileSize(t, newest)-7); err != nil {
				t.Fatal(err)
			}
			return 29
		}, 30},
		{"garbage without newline appended", func(t *testing.T, newest string) uint64 {
			appendFile(t, newest, `{"time":"2025-01-01T00:00:00Z","seq":31,"proj`)
			return 30
		}, 31},
		{"complete garbage line then torn line", func(t *testing.T, newest string) uint64 {
			appendFile(t, newest, "not json\n{\"seq\":")
			return 30
		}, 31},
		{"new empty segment", func(t *testing.T, newest string) uint64 {
			appendFile(t, filepath.Join(filepath.Dir(newest), segName(31)), "")
			return 30
		}, 31},
		{"new segment with only a torn line", func(t *testing.T, newest string) uint64 {
			appendFile(t, filepath.Join(filepath.Dir(newest), segName(31)), `{"time":"2025`)
			return 30
		}, 31},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s1, err := Open(Options{Dir: dir, SegmentSize: 1500}, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i <= 30; i++ {
				mustAppend(t, s1, Record{Project: "p", Agent: "a", Message: fmt.Sprintf("m%d", i)})
			}
			// No Close: the first "daemon" died.
			files := segments(t, dir, "p", "a")
			if len(files) < 2 {
				t.Fatalf("want several segments, got %d", len(files))
			}
			lastKept := tc.damage(t, files[len(files)-1])

			s2 := openStore(t, Options{Dir: dir, SegmentSize: 1500})
			st, err := s2.Stats("p", "a")
			if err != nil || st.LastSeq != lastKept {
				t.Fatalf("Stats = %+v, %v; want last seq %d", st, err, lastKept)
			}
			rec := mustAppend(t, s2, Record{Project: "p", Agent: "a", Message: "after"})
			if rec.Seq != tc.wantSeq {
				t.Fatalf("new seq = %d, want %d", rec.Seq, tc.wantSeq)
			}
			recs := readAll(t, s2, Query{Project: "p", Agent: "a"})
			checkSeqs(t, recs, 1)
			if len(recs) != int(tc.wantSeq) || recs[len(recs)-1].Message != "after" {
				t.Fatalf("got %d records, last %+v", len(recs), recs[len(recs)-1])
			}
			for _, r := range recs[:len(recs)-1] {
				if r.Message != fmt.Sprintf("m%d", r.Seq) {
					t.Fatalf("record %d = %q", r.Seq, r.Message)
				}
			}
		})
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestAppend(t *testing.T) {
	s := openStore(t, Options{})
	got := mustAppend(t, s, Record{Project: "p", Agent: "a", Message: "started (run 1)", Run: 1, Fields: map[string]any{"pid": 42}})
	if got.Seq != 1 || got.Stream != StreamSystem || got.Level != LevelInfo || got.Time.IsZero() {
		t.Errorf("Append = %+v", got)
	}
	at := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	got = mustAppend(t, s, Record{Project: "p", Agent: "a", Message: "exited with code 1", Level: "ERR", Time: at, Seq: 99})
	if got.Seq != 2 || got.Level != LevelError || !got.Time.Equal(at) {
		t.Errorf("Append = %+v", got)
	}
	bad := []struct {
		name string
		rec  Record
	}{
		{"no agent", Record{Project: "p"}},
		{"bad stream", Record{Project: "p", Agent: "a", Stream: "tty"}},
		{"unencodable field", Record{Project: "p", Agent: "a", Fields: map[string]any{"f": func() {}}}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Append(tc.rec); !errdefs.IsInvalidArgument(err) {
				t.Errorf("Append = %v, want invalid argument", err)
			}
		})
	}
	if st, _ := s.Stats("p", "a"); st.LastSeq != 2 {
		t.Errorf("rejected records consumed seqs: %+v", st)
	}
}

func TestRemove(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, Options{Dir: dir})
	mustAppend(t, s, Record{Project: "p", Agent: "a", Message: "x"})
	mustAppend(t, s, Record{Project: "q", Agent: "a", Message: "other project"})
	if err := s.Remove("p"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "p")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("project directory still there: %v", err)
	}
	if _, err := s.Stats("p", "a"); !errdefs.IsNotFound(err) {
		t.Errorf("Stats after Remove = %v, want not found", err)
	}
	if got := readAll(t, s, Query{Project: "p"}); len(got) != 0 {
		t.Errorf("Read after Remove = %d records", len(got))
	}
	if got := readAll(t, s, Query{Project: "q"}); len(got) != 1 {
		t.Errorf("other project lost records: %d", len(got))
	}
	if err := s.Remove("../q"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Remove(../q) = %v", err)
	}
}

func TestStatsNotFound(t *testing.T) {
	s := openStore(t, Options{})
	if _, err := s.Stats("p", "nobody"); !errdefs.IsNotFound(err) {
		t.Errorf("Stats = %v, want not found", err)
	}
}

func TestOpenValidates(t *testing.T) {
	for _, o := range []Options{{}, {Dir: t.TempDir(), Segments: -1}, {Dir: t.TempDir(), SegmentSize: -5}} {
		if _, err := Open(o, nil); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Open(%+v) = %v, want invalid argument", o, err)
		}
	}
}
