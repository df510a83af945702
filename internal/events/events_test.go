package events

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestEmitOrderAndFilter(t *testing.T) {
	s := New()
	all := s.Subscribe("all", 10, nil)
	one := s.Subscribe("p1", 10, ForAgent("p1", ""))
	denials := s.Subscribe("denials", 10, OfType(EgressDenied))

	s.Emit(Event{Project: "p1", Agent: "a", Detail: AgentStateDetail{State: "running"}})
	s.Emit(Event{Project: "p2", Agent: "b", Detail: EgressDeniedDetail{Protocol: "dns", Host: "evil.example", Reason: "not allowed"}})
	s.Emit(Event{Project: "p1", Agent: "a", Detail: EgressDeniedDetail{Protocol: "tcp", Addr: "1.2.3.4", Port: 443, Reason: "literal address"}})
	s.Close()

	var seqs []uint64
	for e := range all.C {
		seqs = append(seqs, e.Seq)
		if e.Time.IsZero() {
			t.Errorf("event %d has no time", e.Seq)
		}
		if e.Type != e.Detail.EventType() {
			t.Errorf("event %d: type %q, detail says %q", e.Seq, e.Type, e.Detail.EventType())
		}
	}
	if diff := cmp.Diff([]uint64{1, 2, 3}, seqs); diff != "" {
		t.Errorf("all: seqs (-want +got):\n%s", diff)
	}
	var p1 []uint64
	for e := range one.C {
		p1 = append(p1, e.Seq)
	}
	if diff := cmp.Diff([]uint64{1, 3}, p1); diff != "" {
		t.Errorf("project filter (-want +got):\n%s", diff)
	}
	var d []uint64
	for e := range denials.C {
		d = append(d, e.Seq)
	}
	if diff := cmp.Diff([]uint64{2, 3}, d); diff != "" {
		t.Errorf("type filter (-want +got):\n%s", diff)
	}
}

func TestFullBufferDropsAndCounts(t *testing.T) {
	s := New()
	slow := s.Subscribe("slow", 2, nil)
	fast := s.Subscribe("fast", 100, nil)
	var tapped int
	s.Tap(func(Event) { tapped++ })
	for i := 0; i < 10; i++ {
		s.Emit(Event{Type: DaemonStart, Detail: DaemonDetail{PID: i}})
	}
	if got := slow.Dropped(); got != 8 {
		t.Errorf("slow subscriber dropped %d, want 8", got)
	}
	if got := fast.Dropped(); got != 0 {
		t.Errorf("fast subscriber dropped %d, want 0", got)
	}
	if tapped != 10 {
		t.Errorf("tap saw %d events, want 10", tapped)
	}
	emitted, stats := s.Stats()
	if emitted != 10 || len(stats) != 2 {
		t.Errorf("stats: emitted %d, %d subscribers; want 10, 2", emitted, len(stats))
	}
	// The slow one kept the oldest two.
	e := <-slow.C
	if e.Seq != 1 {
		t.Errorf("slow subscriber's first event is %d, want 1", e.Seq)
	}
}

func TestJSONRoundTripKeepsDetailType(t *testing.T) {
	code := 3
	in := []Event{
		{Seq: 1, Time: time.Unix(100, 0).UTC(), Type: AgentState, Project: "p", Agent: "a", Run: 2, Detail: AgentStateDetail{State: "failed", Reason: "Exited", ExitCode: &code}},
		{Seq: 2, Time: time.Unix(101, 0).UTC(), Type: AgentOOM, Project: "p", Agent: "a", Detail: AgentOOMDetail{LimitBytes: 1 << 20, Usage: map[string]int64{"anon": 900000}}},
		{Seq: 3, Time: time.Unix(102, 0).UTC(), Type: DaemonStop, Detail: DaemonDetail{Reason: "signal"}},
		{Seq: 4, Time: time.Unix(103, 0).UTC(), Type: "future.kind", Detail: Raw(`{"x":1}`)},
	}
	for _, e := range in {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var out Event
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("unmarshal %s: %v", b, err)
		}
		if diff := cmp.Diff(e, out); diff != "" {
			t.Errorf("round trip of %s (-want +got):\n%s", e.Type, diff)
		}
	}
	var bad Event
	if err := json.Unmarshal([]byte(`{"type":"agent.state","detail":{"state":7}}`), &bad); err == nil {
		t.Error("a detail of the wrong shape decoded without error")
	}
}

func TestEveryTypeHasADecoder(t *testing.T) {
	for _, d := range []Detail{AgentStateDetail{}, AgentOOMDetail{}, AgentRestartDetail{}, EgressDeniedDetail{}, EgressFailedDetail{},
		BusDeniedDetail{}, LLMDeniedDetail{}, FSDeniedDetail{}, APIRequestDetail{}, DaemonDetail{}, OpsDetail{}, AlertDetail{}} {
		if !Known(d.EventType()) {
			t.Errorf("%T: type %q has no decoder", d, d.EventType())
		}
	}
}

func TestCloseRacesEmit(t *testing.T) {
	s := New()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				s.Emit(Event{Type: DaemonStart, Detail: DaemonDetail{}})
			}
		}()
	}
	for i := 0; i < 50; i++ {
		sub := s.Subscribe("x", 4, nil)
		sub.Close()
		sub.Close()
	}
	late := s.Subscribe("late", 1, nil)
	s.Close()
	wg.Wait()
	for range late.C {
	}
	after := s.Subscribe("after", 1, nil)
	if _, ok := <-after.C; ok {
		t.Error("a subscription made after Close is open")
	}
}
