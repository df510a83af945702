package logs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// fill appends n records to project/agent with times t0+start+i seconds.
func fill(t *testing.T, s *Store, project, agent string, n, start int) {
	t.Helper()
	for i := range n {
		mustAppend(t, s, Record{Project: project, Agent: agent, Stream: StreamStdout,
			Message: fmt.Sprintf("%s-%d", agent, start+i), Time: t0.Add(time.Duration(start+i) * time.Second)})
	}
}

func messages(recs []Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Message)
	}
	return out
}

func TestReadQueries(t *testing.T) {
	// Small segments so tails and resumes cross segment boundaries.
	s := openStore(t, Options{SegmentSize: 600, Segments: 100})
	fill(t, s, "p", "a", 20, 0) // a-0..a-19 at t0+0..19s
	fill(t, s, "p", "b", 10, 5) // b-5..b-14 at t0+5..14s
	fill(t, s, "other", "a", 3, 0)

	seq := func(prefix string, from, to int) []string {
		var out []string
		for i := from; i <= to; i++ {
			out = append(out, fmt.Sprintf("%s-%d", prefix, i))
		}
		return out
	}
	cases := []struct {
		name string
		q    Query
		want []string
	}{
		{"all of one agent", Query{Project: "p", Agent: "a"}, seq("a", 0, 19)},
		{"tail", Query{Project: "p", Agent: "a", Tail: 3}, seq("a", 17, 19)},
		{"tail across segments", Query{Project: "p", Agent: "a", Tail: 12}, seq("a", 8, 19)},
		{"tail larger than log", Query{Project: "p", Agent: "b", Tail: 1000}, seq("b", 5, 14)},
		{"since", Query{Project: "p", Agent: "a", Since: t0.Add(15 * time.Second)}, seq("a", 15, 19)},
		{"since and tail", Query{Project: "p", Agent: "a", Since: t0.Add(10 * time.Second), Tail: 2}, seq("a", 18, 19)},
		{"since after everything", Query{Project: "p", Agent: "a", Since: t0.Add(time.Hour)}, nil},
		{"after seq", Query{Project: "p", Agent: "a", AfterSeq: map[string]uint64{"a": 16}}, seq("a", 16, 19)},
		{"after seq and tail", Query{Project: "p", Agent: "a", Tail: 10, AfterSeq: map[string]uint64{"a": 17}}, seq("a", 17, 19)},
		{"project merges by time", Query{Project: "p", Since: t0.Add(12 * time.Second)},
			[]string{"a-12", "b-12", "a-13", "b-13", "a-14", "b-14", "a-15", "a-16", "a-17", "a-18", "a-19"}},
		{"project tail is per agent", Query{Project: "p", Tail: 2}, []string{"b-13", "b-14", "a-18", "a-19"}},
		{"unknown agent is empty", Query{Project: "p", Agent: "zed"}, nil},
		{"unknown project is empty", Query{Project: "nope"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := readAll(t, s, tc.q)
			if diff := cmp.Diff(tc.want, messages(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			for _, r := range got {
				if r.Project != tc.q.Project {
					t.Errorf("record of project %s", r.Project)
				}
			}
		})
	}
	if _, err := os.Stat(s.opts.Dir + "/p/zed"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("reading an unknown agent created its directory")
	}
}

func TestReadRejects(t *testing.T) {
	s := openStore(t, Options{})
	for _, q := range []Query{{}, {Project: "p", Agent: "a/b"}, {Project: "p", Tail: -1}} {
		if err := s.Read(context.Background(), q, func(Record) error { return nil }); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Read(%+v) = %v, want invalid argument", q, err)
		}
	}
}

func TestReadStopsOnCallbackError(t *testing.T) {
	s := openStore(t, Options{})
	fill(t, s, "p", "a", 5, 0)
	stop := errors.New("enough")
	n := 0
	err := s.Read(context.Background(), Query{Project: "p"}, func(Record) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Errorf("Read = %v after %d records", err, n)
	}
}

// follow runs a following Read in the background, sending records to the
// returned channel. stop cancels it and returns Read's error.
func follow(t *testing.T, s *Store, q Query) (<-chan Record, func() error) {
	t.Helper()
	q.Follow = true
	ch := make(chan Record, 1<<16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Read(ctx, q, func(r Record) error {
			ch <- r
			return nil
		})
	}()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(waitTimeout):
				err = errors.New("follower did not stop")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return ch, stop
}

func receive(t *testing.T, ch <-chan Record, n int) []Record {
	t.Helper()
	var out []Record
	timeout := time.After(waitTimeout)
	for len(out) < n {
		select {
		case r := <-ch:
			out = append(out, r)
		case <-timeout:
			t.Fatalf("received %d of %d records: %v", len(out), n, messages(out))
		}
	}
	return out
}

func TestFollowSeesNewRecords(t *testing.T) {
	s := openStore(t, Options{})
	fill(t, s, "p", "a", 5, 0)
	ch, stop := follow(t, s, Query{Project: "p", Agent: "a", Tail: 2})
	got := receive(t, ch, 2)
	if diff := cmp.Diff([]string{"a-3", "a-4"}, messages(got)); diff != "" {
		t.Fatalf("tail before follow (-want +got):\n%s", diff)
	}
	// New lines through Collect after the follower started.
	if err := s.Collect(context.Background(), strings.NewReader("live 1\nlive 2\n"), Meta{Project: "p", Agent: "a"}); err != nil {
		t.Fatal(err)
	}
	got = receive(t, ch, 2)
	if diff := cmp.Diff([]string{"live 1", "live 2"}, messages(got)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	checkSeqs(t, got, 6)
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("follow ended with %v, want context.Canceled", err)
	}
	select {
	case r := <-ch:
		t.Errorf("unexpected extra record %+v", r)
	default:
	}
}

func TestFollowAgentThatDoesNotExistYet(t *testing.T) {
	s := openStore(t, Options{})
	ch, _ := follow(t, s, Query{Project: "p", Agent: "late"})
	mustAppend(t, s, Record{Project: "p", Agent: "other", Message: "not followed"})
	mustAppend(t, s, Record{Project: "p", Agent: "late", Message: "hello"})
	if got := receive(t, ch, 1); got[0].Message != "hello" {
		t.Errorf("got %+v", got[0])
	}
}

// TestFollowProjectInterleaves follows a project before its agents exist
// (like an attached cortex run) and checks records of two agents arrive
// interleaved in the order they were written.
func TestFollowProjectInterleaves(t *testing.T) {
	s := openStore(t, Options{})
	ch, _ := follow(t, s, Query{Project: "p"})
	var want []string
	for i := range 20 {
		agent := []string{"a", "b"}[i%2]
		msg := fmt.Sprintf("%s says %d", agent, i)
		mustAppend(t, s, Record{Project: "p", Agent: agent, Stream: StreamStdout, Message: msg})
		want = append(want, msg)
		// Wait for it, so the expected order is the order of writing.
		if got := receive(t, ch, 1); got[0].Message != msg {
			t.Fatalf("record %d = %q, want %q", i, got[0].Message, msg)
		}
	}
	mustAppend(t, s, Record{Project: "q", Agent: "a", Message: "other project"})

	// A burst from both agents at once: all arrive, each agent in order.
	var wg sync.WaitGroup
	for _, agent := range []string{"a", "b"} {
		wg.Go(func() {
			var in strings.Builder
			for i := range 3000 {
				fmt.Fprintf(&in, "%s burst %d\n", agent, i)
			}
			if err := s.Collect(context.Background(), &chunkReader{s: in.String(), n: 500}, Meta{Project: "p", Agent: agent}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got := receive(t, ch, 6000)
	next := map[string]int{}
	lastSeq := map[string]uint64{"a": 10, "b": 10}
	for _, r := range got {
		if r.Project != "p" {
			t.Fatalf("record of project %s", r.Project)
		}
		if want := fmt.Sprintf("%s burst %d", r.Agent, next[r.Agent]); r.Message != want {
			t.Fatalf("got %q, want %q", r.Message, want)
		}
		next[r.Agent]++
		if r.Seq != lastSeq[r.Agent]+1 {
			t.Fatalf("agent %s: seq %d after %d", r.Agent, r.Seq, lastSeq[r.Agent])
		}
		lastSeq[r.Agent] = r.Seq
	}
}

// TestSlowFollowerDoesNotBlockCollect stalls a follower completely while
// an agent writes far more than the follower ring holds: Collect must
// finish regardless, and the follower must then catch up from disk with
// nothing missing.
func TestSlowFollowerDoesNotBlockCollect(t *testing.T) {
	s := openStore(t, Options{SegmentSize: 64 << 10, Segments: 1000})
	const n = 20000
	release := make(chan struct{})
	var mu sync.Mutex
	var got []Record
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- s.Read(ctx, Query{Project: "p", Agent: "a", Follow: true}, func(r Record) error {
			<-release // stuck until Collect is done
			mu.Lock()
			got = append(got, r)
			mu.Unlock()
			return nil
		})
	}()
	// The follower is registered once the agent entry exists; make sure it
	// is stuck on the first record before the flood.
	mustAppend(t, s, Record{Project: "p", Agent: "a", Message: "first"})

	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	collected := make(chan error, 1)
	go func() {
		collected <- s.Collect(context.Background(), &chunkReader{s: in.String(), n: 4096}, Meta{Project: "p", Agent: "a"})
	}()
	select {
	case err := <-collected:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Collect blocked behind a stalled follower")
	}
	mu.Lock()
	if len(got) != 0 {
		t.Errorf("follower progressed while stalled: %d", len(got))
	}
	mu.Unlock()
	close(release)

	deadline := time.Now().Add(waitTimeout)
	for {
		mu.Lock()
		k := len(got)
		mu.Unlock()
		if k >= n+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("follower caught up only %d of %d", k, n+1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Read = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != n+1 {
		t.Fatalf("follower got %d records, want %d", len(got), n+1)
	}
	checkSeqs(t, got, 1)
	for i, r := range got[1:] {
		if r.Message != fmt.Sprintf("line %d", i) {
			t.Fatalf("record %d = %q", r.Seq, r.Message)
		}
	}
}

func TestFollowResumeAfterSeq(t *testing.T) {
	s := openStore(t, Options{})
	fill(t, s, "p", "a", 10, 0)
	ch, _ := follow(t, s, Query{Project: "p", Agent: "a", AfterSeq: map[string]uint64{"a": 8}})
	got := receive(t, ch, 2)
	checkSeqs(t, got, 9)
	fill(t, s, "p", "a", 1, 10)
	if got := receive(t, ch, 1); got[0].Seq != 11 {
		t.Errorf("seq %d, want 11", got[0].Seq)
	}
}

func TestFollowEnds(t *testing.T) {
	cases := []struct {
		name string
		end  func(s *Store) error
		want func(error) bool
	}{
		{"remove project", func(s *Store) error { return s.Remove("p") }, errdefs.IsNotFound},
		{"close store", func(s *Store) error { return s.Close() }, errdefs.IsUnavailable},
	}
	for _, tc := range cases {
		for _, q := range []Query{{Project: "p"}, {Project: "p", Agent: "a"}} {
			t.Run(tc.name+"/agent="+q.Agent, func(t *testing.T) {
				s := openStore(t, Options{})
				mustAppend(t, s, Record{Project: "p", Agent: "a", Message: "x"})
				ch, stop := follow(t, s, q)
				receive(t, ch, 1)
				if err := tc.end(s); err != nil {
					t.Fatal(err)
				}
				// The follower ends on its own; stop only collects the error
				// (cancel after the end changes nothing).
				time.Sleep(10 * time.Millisecond)
				if err := stop(); !tc.want(err) {
					t.Errorf("follow ended with %v", err)
				}
			})
		}
	}
}
