package bus

import (
	"context"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/bus/bustest"
	"github.com/cortexrt/cortex/internal/errdefs"
)

// broker is a real external broker a conformance test can stop and start.
type broker interface {
	URL() string
	Stop()
	Start()
}

// TestBrokerConformance runs one suite against every broker kind: two
// daemons (two Servers, two store dirs) exchange a project's messages
// through the broker, without echo, scoped to the project, and survive a
// broker outage with local delivery working throughout.
func TestBrokerConformance(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) broker
	}{
		{"redis", func(t *testing.T) broker { return bustest.StartRedis(t) }},
		{"nats", func(t *testing.T) broker { return bustest.StartNATS(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testBroker(t, tc.start(t))
		})
	}
}

func waitBroker(t *testing.T, s *Server, project string, connected bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		for _, b := range s.Brokers() {
			if b.Project == project && b.Connected == connected {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("broker of %s never connected=%v: %+v", project, connected, s.Brokers())
}

// expectPayloads reads messages until it has want (in order), then checks
// nothing more arrives for a moment (no echo, no duplicates).
func expectPayloads(t *testing.T, c *bustest.Client, want ...string) []bustest.Line {
	t.Helper()
	var got []bustest.Line
	for range want {
		m, err := c.Next(wait)
		if err != nil {
			t.Fatalf("%s waiting for %v: got %d (%v), err %v", c.Hello.Agent, want, len(got), got, err)
		}
		got = append(got, m)
	}
	for i, m := range got {
		if string(m.Payload) != want[i] {
			t.Errorf("%s message %d = %s, want %s", c.Hello.Agent, i, m.Payload, want[i])
		}
	}
	if m, err := c.Next(300 * time.Millisecond); !bustest.IsTimeout(err) {
		t.Errorf("%s got an extra message %s (err %v): echo or duplicate", c.Hello.Agent, m.Payload, err)
	}
	return got
}

func testBroker(t *testing.T, b broker) {
	ctx := context.Background()
	s1 := newServer(t, Config{}, "")
	s2 := newServer(t, Config{}, "")
	if s1.NodeID() == s2.NodeID() {
		t.Fatal("two stores gave the same node id")
	}
	dir := sockDir(t)
	a := dial(t, attach(t, s1, dir, "p", "a", Policy{}))
	aSub := dial(t, attach(t, s1, dir, "p", "a-sub", Policy{}))
	bSub := dial(t, attach(t, s2, dir, "p", "b", Policy{Durable: []string{"jobs"}}))
	other := dial(t, attach(t, s2, dir, "other", "o", Policy{}))
	for _, s := range []*Server{s1, s2} {
		if err := s.SetBroker(ctx, "p", b.URL()); err != nil {
			t.Fatal(err)
		}
		if err := s.SetBroker(ctx, "other", b.URL()); err != nil {
			t.Fatal(err)
		}
		waitBroker(t, s, "p", true)
		waitBroker(t, s, "other", true)
	}
	mustSubscribe(t, aSub, "x")
	mustSubscribe(t, bSub, "x")
	mustSubscribe(t, other, "x")

	t.Run("cross-node", func(t *testing.T) {
		mustPublish(t, a, "x", map[string]any{"n": 1})
		got := expectPayloads(t, bSub, `{"n":1}`)
		if got[0].From != "a" || got[0].Node != s1.NodeID() {
			t.Errorf("remote message from=%q node=%q, want a from %s", got[0].From, got[0].Node, s1.NodeID())
		}
		expectPayloads(t, aSub, `{"n":1}`) // once: the broker's echo is dropped
		mustPublish(t, bSub, "x", map[string]any{"n": 2})
		got = expectPayloads(t, aSub, `{"n":2}`)
		if got[0].From != "b" || got[0].Node != s2.NodeID() {
			t.Errorf("remote message from=%q node=%q", got[0].From, got[0].Node)
		}
		expectPayloads(t, bSub, `{"n":2}`)
		if m, err := other.Next(200 * time.Millisecond); !bustest.IsTimeout(err) {
			t.Errorf("project other received %s: projects must not meet across nodes", m.Payload)
		}
	})

	t.Run("remote-into-durable", func(t *testing.T) {
		// jobs is durable on s2 only; a message from s1 is stored there
		// and reaches a subscriber that comes later.
		mustPublish(t, a, "jobs", map[string]any{"job": 1})
		deadline := time.Now().Add(wait)
		for statsOf(s2, "p", "jobs").Published < 1 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		late := dial(t, attach(t, s2, dir, "p", "late", Policy{}))
		mustSubscribe(t, late, "jobs")
		m, err := late.Next(wait)
		if err != nil || string(m.Payload) != `{"job":1}` || m.Ack == "" || m.From != "a" {
			t.Fatalf("late durable subscriber: %+v %v", m, err)
		}
	})

	t.Run("outage", func(t *testing.T) {
		b.Stop()
		waitBroker(t, s1, "p", false)
		// Local delivery keeps working while the broker is down.
		for i := 0; i < 5; i++ {
			mustPublish(t, a, "x", map[string]any{"during": i})
		}
		expectPayloads(t, aSub, `{"during":0}`, `{"during":1}`, `{"during":2}`, `{"during":3}`, `{"during":4}`)
		b.Start()
		waitBroker(t, s1, "p", true)
		waitBroker(t, s2, "p", true)
		// Messages queued during the outage may or may not arrive
		// (Pub/Sub has no memory); bridging resumes for new ones.
		drain(bSub)
		mustPublish(t, a, "x", map[string]any{"after": 1})
		deadline := time.Now().Add(wait)
		for {
			m, err := bSub.Next(wait)
			if err != nil {
				t.Fatalf("bridging did not resume: %v", err)
			}
			if string(m.Payload) == `{"after":1}` {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("bridging did not resume")
			}
		}
		drain(aSub)
		st := s1.Brokers()
		if len(st) != 2 || st[1].Errors == 0 || st[1].Forwarded == 0 {
			t.Errorf("broker stats %+v: want the outage counted", st)
		}
	})

	t.Run("set-broker", func(t *testing.T) {
		if err := s1.SetBroker(ctx, "p", b.URL()); err != nil {
			t.Fatal(err)
		}
		if n := len(s1.Brokers()); n != 2 {
			t.Errorf("same URL twice: %d bridges", n)
		}
		if err := s1.SetBroker(ctx, "p", ""); err != nil {
			t.Fatal(err)
		}
		mustPublish(t, a, "x", map[string]any{"n": 3})
		expectPayloads(t, aSub, `{"n":3}`)
		drain(bSub)
		if m, err := bSub.Next(500 * time.Millisecond); !bustest.IsTimeout(err) {
			t.Errorf("message crossed after the bridge was removed: %s %v", m.Payload, err)
		}
	})
}

func drain(c *bustest.Client) {
	for {
		if _, err := c.Next(200 * time.Millisecond); err != nil {
			return
		}
	}
}

func TestSetBrokerInvalid(t *testing.T) {
	s := newServer(t, Config{}, "")
	for _, tc := range []struct{ name, url string }{
		{"scheme", "http://example.com"},
		{"not-url", "redis://[::1"},
		{"bad-redis-db", "redis://127.0.0.1:6379/notanumber"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.SetBroker(context.Background(), "p", tc.url)
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("SetBroker(%q) = %v, want invalid argument", tc.url, err)
			}
		})
	}
	if len(s.Brokers()) != 0 {
		t.Errorf("invalid URLs left bridges: %+v", s.Brokers())
	}
}

// TestBrokerUnreachableAtStart: a broker that is down when the bridge is
// set up is connected to once it comes up.
func TestBrokerUnreachableAtStart(t *testing.T) {
	r := bustest.StartRedis(t)
	r.Stop()
	s := newServer(t, Config{}, "")
	if err := s.SetBroker(context.Background(), "p", r.URL()); err != nil {
		t.Fatal(err)
	}
	sub, err := s.Subscribe(context.Background(), "p", "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(context.Background(), "p", "x", []byte(`{"local":true}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sub:
	case <-time.After(wait):
		t.Fatal("local delivery blocked by an unreachable broker")
	}
	r.Start()
	waitBroker(t, s, "p", true)
}
