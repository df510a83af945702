package audit

import (
	"context"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/events"
)

// TestRecorder: lifecycle events get an entry each; a flood of denials
// one summary per agent and target, with the count; api.request events
// are not recorded (the API appends its own).
func TestRecorder(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, 1<<20)
	s := events.New()
	r := NewRecorder(l, s, time.Hour, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()

	s.Emit(events.Event{Project: "p", Agent: "a", Detail: events.AgentStateDetail{State: "running"}})
	for i := 0; i < 500; i++ {
		s.Emit(events.Event{Project: "p", Agent: "a", Detail: events.EgressDeniedDetail{Protocol: "dns", Host: "evil.test", Reason: "not allowed"}})
	}
	s.Emit(events.Event{Project: "p", Agent: "a", Detail: events.EgressDeniedDetail{Protocol: "tcp", Addr: "1.2.3.4", Port: 443, Reason: "literal address"}})
	s.Emit(events.Event{Detail: events.APIRequestDetail{Identity: "uid:0"}})
	s.Emit(events.Event{Type: events.DaemonStop, Detail: events.DaemonDetail{PID: 1}})
	cancel()
	<-done
	_ = l.Close()
	mustVerify(t, dir)
	es, err := openList(t, dir, Filter{Kinds: []Kind{KindEvent}})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, e := range es {
		counts[e.Event.Type] += max(e.Event.Count, 1)
		if e.Event.Type == string(events.EgressDenied) && e.Event.Count > 1 && (e.Event.First.IsZero() || e.Event.Last.Before(e.Event.First)) {
			t.Errorf("summary without its span: %+v", e.Event)
		}
	}
	if len(es) != 4 {
		for _, e := range es {
			t.Logf("%+v", e.Event)
		}
		t.Fatalf("%d event entries, want 4 (state, two denial summaries, daemon.stop)", len(es))
	}
	if counts["egress.denied"] != 501 || counts["agent.state"] != 1 || counts["daemon.stop"] != 1 || counts["api.request"] != 0 {
		t.Fatalf("counts %v", counts)
	}
}
