package logs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type piece struct {
	Line      string
	Truncated bool
}

func TestSplitter(t *testing.T) {
	cases := []struct {
		name   string
		max    int
		chunks []string
		want   []piece
	}{
		{"lines in one chunk", 10, []string{"a\nbb\n\nccc\n"}, []piece{{"a", false}, {"bb", false}, {"", false}, {"ccc", false}}},
		{"line across chunks", 10, []string{"ab", "cd", "e\nf"}, []piece{{"abcde", false}, {"f", false}}},
		{"exactly max is whole", 4, []string{"abcd", "\n"}, []piece{{"abcd", false}}},
		{"max+1 split", 4, []string{"abcde\n"}, []piece{{"abcd", true}, {"e", true}}},
		{"long line across chunks", 4, []string{"abc", "def", "ghij", "k\nxy"}, []piece{{"abcd", true}, {"efgh", true}, {"ijk", true}, {"xy", false}}},
		{"long line at eof", 4, []string{"abcdefghij"}, []piece{{"abcd", true}, {"efgh", true}, {"ij", true}}},
		{"partial last line", 10, []string{"a\nb"}, []piece{{"a", false}, {"b", false}}},
		{"cut on rune boundary", 5, []string{"ab日本\n"}, []piece{{"ab日", true}, {"本", true}}},
		{"next line after split is whole", 3, []string{"abcdef\nxy\n"}, []piece{{"abc", true}, {"def", true}, {"xy", false}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []piece
			emit := func(b []byte, tr bool) { got = append(got, piece{string(b), tr}) }
			sp := splitter{max: tc.max}
			for _, c := range tc.chunks {
				sp.feed([]byte(c), emit)
			}
			sp.finish(emit)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestCollect100kLines pushes 100,000 lines through real pipes (stdout and
// stderr of one agent, written concurrently) and checks every record
// arrived, in order, with no gap in Seq.
func TestCollect100kLines(t *testing.T) {
	s := openStore(t, Options{SegmentSize: 256 << 20})
	const perStream = 50000
	streams := []string{StreamStdout, StreamStderr}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, stream := range streams {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer w.Close()
			bw := bufio.NewWriterSize(w, 4096)
			for i := range perStream {
				var line string
				switch {
				case stream == StreamStderr && i%2 == 0:
					line = fmt.Sprintf("WARNING:agent:%s %06d %s", stream, i, strings.Repeat("x", i%97))
				case i%3 == 0:
					line = fmt.Sprintf(`{"msg":"%s %06d","level":"debug","i":%d}`, stream, i, i)
				default:
					line = fmt.Sprintf("%s %06d %s", stream, i, strings.Repeat("y", i%53))
				}
				if _, err := bw.WriteString(line + "\n"); err != nil {
					errs <- err
					return
				}
			}
			if err := bw.Flush(); err != nil {
				errs <- err
			}
		})
		wg.Go(func() {
			defer r.Close()
			if err := s.Collect(context.Background(), r, Meta{Project: "p", Agent: "a", Stream: stream}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	recs := readAll(t, s, Query{Project: "p", Agent: "a"})
	if len(recs) != 2*perStream {
		t.Fatalf("got %d records, want %d", len(recs), 2*perStream)
	}
	checkSeqs(t, recs, 1)
	next := map[string]int{}
	for _, r := range recs {
		i := next[r.Stream]
		next[r.Stream]++
		prefix := fmt.Sprintf("%s %06d", r.Stream, i)
		wantLevel := "info"
		switch {
		case r.Stream == StreamStderr && i%2 == 0:
			prefix = "WARNING:agent:" + prefix
			wantLevel = "warn"
		case i%3 == 0:
			wantLevel = "debug"
			if r.Fields["i"] != json.Number(strconv.Itoa(i)) {
				t.Fatalf("record %d: fields %v", r.Seq, r.Fields)
			}
		case r.Stream == StreamStderr:
			wantLevel = "warn"
		}
		if !strings.HasPrefix(r.Message, prefix) || r.Level != wantLevel || r.Project != "p" || r.Agent != "a" {
			t.Fatalf("record %d = %+v, want message prefix %q level %s", r.Seq, r, prefix, wantLevel)
		}
		if r.Time.IsZero() {
			t.Fatalf("record %d without time", r.Seq)
		}
	}
	for _, st := range streams {
		if next[st] != perStream {
			t.Errorf("%s: %d records, want %d", st, next[st], perStream)
		}
	}
	if st, err := s.Stats("p", "a"); err != nil || st.Records != 2*perStream || st.LastSeq != 2*perStream {
		t.Errorf("Stats = %+v, %v", st, err)
	}
}

func TestCollectLongLinesAndPartialLast(t *testing.T) {
	s := openStore(t, Options{MaxLine: 64})
	long := strings.Repeat("日本語", 50) + "end" // 453 bytes, multi-byte runes
	input := "first\n" + long + "\n" + "\xff\xfeinvalid\n" + "no newline at eof"
	if err := s.Collect(context.Background(), strings.NewReader(input), Meta{Project: "p", Agent: "a"}); err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, s, Query{Project: "p", Agent: "a"})
	checkSeqs(t, recs, 1)
	if recs[0].Message != "first" || recs[0].Truncated {
		t.Errorf("first = %+v", recs[0])
	}
	var joined strings.Builder
	i := 1
	for ; i < len(recs) && recs[i].Truncated; i++ {
		if len(recs[i].Message) > 64 {
			t.Errorf("piece of %d bytes > MaxLine", len(recs[i].Message))
		}
		joined.WriteString(recs[i].Message)
	}
	if joined.String() != long {
		t.Errorf("long line pieces do not join to the line:\n%q", joined.String())
	}
	if rest := recs[i:]; len(rest) != 2 || rest[0].Message != "\uFFFDinvalid" || rest[1].Message != "no newline at eof" {
		t.Errorf("after the long line: %+v", rest)
	}
}

func TestCollectCancelInterruptsBlockedRead(t *testing.T) {
	s := openStore(t, Options{})
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Collect(ctx, r, Meta{Project: "p", Agent: "a"}) }()
	if _, err := w.WriteString("whole\npartial"); err != nil {
		t.Fatal(err)
	}
	// Wait until the whole line is stored, so the read is blocked.
	deadline := time.Now().Add(waitTimeout)
	for {
		if st, err := s.Stats("p", "a"); err == nil && st.LastSeq >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("first line never stored")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Collect = %v, want context.Canceled", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Collect did not return after cancel")
	}
	var msgs []string
	for _, r := range readAll(t, s, Query{Project: "p", Agent: "a"}) {
		msgs = append(msgs, r.Message)
	}
	if diff := cmp.Diff([]string{"whole", "partial"}, msgs); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestCollectRejectsBadMeta(t *testing.T) {
	s := openStore(t, Options{})
	cases := []struct {
		name string
		m    Meta
	}{
		{"no project", Meta{Agent: "a"}},
		{"path in agent", Meta{Project: "p", Agent: "../x"}},
		{"dot agent", Meta{Project: "p", Agent: "."}},
		{"bad stream", Meta{Project: "p", Agent: "a", Stream: "stdin"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Collect(context.Background(), strings.NewReader("x\n"), tc.m); err == nil {
				t.Error("no error")
			}
		})
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestCollectReadError(t *testing.T) {
	s := openStore(t, Options{})
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("a\nb"), errReader{boom})
	err := s.Collect(context.Background(), r, Meta{Project: "p", Agent: "a"})
	if !errors.Is(err, boom) {
		t.Fatalf("Collect = %v, want boom", err)
	}
	if got := readAll(t, s, Query{Project: "p", Agent: "a"}); len(got) != 2 {
		t.Errorf("lines read before the error: %d records, want 2", len(got))
	}
}
