package bus

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/bus/bustest"
)

// TestDurableNoLoss: 1000 messages on a durable channel reach a Python
// subscriber that starts late, is killed and restarted, and lives through
// a server restart (while a Python publisher is mid-stream). Duplicates are
// allowed (at-least-once); loss is not.
func TestDurableNoLoss(t *testing.T) {
	t0 := time.Now()
	store := t.TempDir()
	dir := sockDir(t)
	pubSock := filepath.Join(dir, "producer.sock")
	subSock := filepath.Join(dir, "consumer.sock")
	open := func() *Server {
		s, err := New(context.Background(), Config{}, store, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []struct {
			path string
			id   Identity
			pol  Policy
		}{
			{pubSock, Identity{"p", "producer"}, Policy{}},
			{subSock, Identity{"p", "consumer"}, Policy{Durable: []string{"jobs"}}},
		} {
			if _, err := s.ServeAgent(context.Background(), a.id, a.pol, a.path, -1, -1); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	s := open()
	defer func() { s.Close() }()
	agent := testdata("py", "agent.py")
	publish := func(from, n int, extra ...string) *bustest.Proc {
		return bustest.Python(t, agent, append([]string{"pub", "jobs", fmt.Sprint(n), "--start", fmt.Sprint(from)}, extra...), busEnv(pubSock))
	}
	waitDone := func(p *bustest.Proc) {
		t.Helper()
		if !p.WaitLine(wait, "DONE") {
			t.Fatalf("publisher did not finish: %q %s", p.Lines(), p.Stderr())
		}
	}
	var all []received
	collect := func(p *bustest.Proc) { all = append(all, parseReceived(t, p.Lines())...) }
	haveAll := func(upTo int) func([]string) bool {
		return func(lines []string) bool {
			seen := distinctN(append(append([]received(nil), all...), parseReceived(t, lines)...))
			for i := 0; i < upTo; i++ {
				if seen[i] == 0 {
					return false
				}
			}
			return true
		}
	}

	// 1. Published before any subscriber exists.
	waitDone(publish(0, 300))
	sub := bustest.Python(t, agent, []string{"sub", "jobs"}, busEnv(subSock))
	if !sub.WaitFor(wait, haveAll(300)) {
		t.Fatalf("late subscriber missed messages: got %d distinct", len(distinctN(parseReceived(t, sub.Lines()))))
	}
	t.Log("phase 2", time.Since(t0))
	// 2. Published while the subscriber is dead (SIGKILL: nothing settled).
	sub.Kill()
	collect(sub)
	waitDone(publish(300, 300))
	sub = bustest.Python(t, agent, []string{"sub", "jobs"}, busEnv(subSock))
	if !sub.WaitFor(wait, haveAll(600)) {
		t.Fatalf("restarted subscriber missed messages")
	}
	t.Log("phase 3", time.Since(t0))
	// 3. Across a server restart, with publisher and subscriber running.
	pub := publish(600, 400, "--sleep", "0.004")
	if !pub.WaitFor(wait, func([]string) bool { return statsOf(s, "p", "jobs").Published >= 700 }) {
		t.Fatal("publisher did not get going")
	}
	// Close has dropped both agents' connections and removed their
	// sockets by the time it returns, so each SDK is in its reconnect loop.
	s.Close()
	s = open()
	if !statsOf(s, "p", "jobs").Durable {
		t.Fatal("durable channel not known after restart")
	}
	t.Log("restarted", time.Since(t0))
	waitDone(pub)
	t.Log("published all", time.Since(t0))
	if !sub.WaitFor(wait, haveAll(1000)) {
		seen := distinctN(append(all, parseReceived(t, sub.Lines())...))
		var missing []int
		for i := 0; i < 1000; i++ {
			if seen[i] == 0 {
				missing = append(missing, i)
			}
		}
		t.Fatalf("lost %d messages: %v; subscriber stderr: %s", len(missing), missing, sub.Stderr())
	}
	collect(sub)
	seen := distinctN(all)
	dups := len(all) - len(seen)
	for n := range seen {
		if n < 0 || n >= 1000 {
			t.Errorf("unexpected message n=%d", n)
		}
	}
	for _, r := range all {
		if !r.Durable || r.Seq == nil || r.Sender != "producer" {
			t.Fatalf("durable message metadata %+v", r)
		}
	}
	t.Logf("received %d messages, %d distinct, %d duplicates", len(all), len(seen), dups)
}

// TestDurableAckAndFlowControl drives acknowledgements over the raw
// protocol: unacknowledged messages come back (marked redelivered) on the
// next connection, acknowledged ones never do, and MaxAckPending caps what
// one agent holds.
func TestDurableAckAndFlowControl(t *testing.T) {
	s := newServer(t, Config{MaxAckPending: 5}, "")
	dir := sockDir(t)
	pubPath := attach(t, s, dir, "p", "pub", Policy{})
	subPath := attach(t, s, dir, "p", "sub", Policy{Durable: []string{"work"}})
	pub := dial(t, pubPath)
	for i := 0; i < 8; i++ {
		if l := mustPublish(t, pub, "work", map[string]any{"n": i}); l.Seq != uint64(i+1) {
			t.Fatalf("publish %d stored as seq %d", i, l.Seq)
		}
	}
	c1 := dial(t, subPath)
	if l := mustSubscribe(t, c1, "work"); !l.Durable || l.Sub == "" {
		t.Fatalf("subscribe reply %+v, want durable", l)
	}
	var got []bustest.Line
	for i := 0; i < 5; i++ {
		m, err := c1.Next(wait)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	if m, err := c1.Next(300 * time.Millisecond); !bustest.IsTimeout(err) {
		t.Fatalf("received %+v beyond max_ack_pending 5 (err %v)", m, err)
	}
	// Ack seq 1, 2 and 4; leave 3 and 5 unsettled.
	for _, i := range []int{0, 1, 3} {
		if err := c1.Ack(got[i].Ack); err != nil {
			t.Fatal(err)
		}
	}
	var more []uint64
	for i := 0; i < 3; i++ {
		m, err := c1.Next(wait)
		if err != nil {
			t.Fatalf("after acks: %v", err)
		}
		more = append(more, m.Seq)
	}
	if fmt.Sprint(more) != "[6 7 8]" {
		t.Fatalf("after three acks received seqs %v, want [6 7 8]", more)
	}
	c1.Close()
	waitSubscribers(t, s, "p", "work", 0)

	c2 := dial(t, subPath)
	mustSubscribe(t, c2, "work")
	redelivered := map[uint64]bool{}
	for i := 0; i < 5; i++ {
		m, err := c2.Next(wait)
		if err != nil {
			t.Fatal(err)
		}
		if !m.Redelivered {
			t.Errorf("seq %d not marked redelivered", m.Seq)
		}
		redelivered[m.Seq] = true
		if err := c2.Ack(m.Ack); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(redelivered) != "map[3:true 5:true 6:true 7:true 8:true]" {
		t.Errorf("redelivered %v, want the unacknowledged 3 5 6 7 8", redelivered)
	}
	if m, err := c2.Next(300 * time.Millisecond); !bustest.IsTimeout(err) {
		t.Errorf("acknowledged message came back: %+v %v", m, err)
	}
	// Stale tokens from the first connection are ignored, answered when asked.
	if _, err := c2.Request(map[string]any{"op": "ack", "ack": got[2].Ack + "000"}); err == nil {
		t.Error("unknown ack token accepted")
	}
}

// TestDurableFanOutPerAgent: each agent has its own durable cursor.
func TestDurableFanOutPerAgent(t *testing.T) {
	s := newServer(t, Config{}, "")
	dir := sockDir(t)
	pub := dial(t, attach(t, s, dir, "p", "pub", Policy{Durable: []string{"events"}}))
	a := dial(t, attach(t, s, dir, "p", "a", Policy{}))
	b := dial(t, attach(t, s, dir, "p", "b", Policy{}))
	mustPublish(t, pub, "events", map[string]any{"n": 1})
	for _, c := range []*bustest.Client{a, b} {
		mustSubscribe(t, c, "events")
		m, err := c.Next(wait)
		if err != nil || string(m.Payload) != `{"n":1}` || m.Ack == "" {
			t.Fatalf("agent %s: %+v %v", c.Hello.Agent, m, err)
		}
	}
}

// TestDurableHeldMessagesKeptAlive: a message held unacknowledged by a
// live connection is not redelivered elsewhere however long it is held
// (well past AckWait); once that connection ends it is redelivered.
func TestDurableHeldMessagesKeptAlive(t *testing.T) {
	s := newServer(t, Config{AckWait: time.Second}, "")
	dir := sockDir(t)
	path := attach(t, s, dir, "p", "worker", Policy{Durable: []string{"jobs"}})
	pub := dial(t, attach(t, s, dir, "p", "pub", Policy{}))
	mustPublish(t, pub, "jobs", map[string]any{"job": 1})
	holder := dial(t, path)
	mustSubscribe(t, holder, "jobs")
	m, err := holder.Next(wait)
	if err != nil {
		t.Fatal(err)
	}
	other := dial(t, path) // same agent, same cursor
	mustSubscribe(t, other, "jobs")
	if m2, err := other.Next(3500 * time.Millisecond); !bustest.IsTimeout(err) {
		t.Fatalf("held message redelivered after AckWait: %+v %v", m2, err)
	}
	holder.Close()
	m2, err := other.Next(wait)
	if err != nil {
		t.Fatal(err)
	}
	if string(m2.Payload) != string(m.Payload) || !m2.Redelivered || m2.Seq != m.Seq {
		t.Errorf("after the holder left got %+v, want seq %d redelivered", m2, m.Seq)
	}
}

// TestDurableReservationsDoNotRefuse: JetStream reserves each durable
// channel's durable_max_bytes of disk; channels whose reservations add up
// to far more than any disk holds are still created (a small disk used
// to refuse the first 1 GiB channel), and carry messages.
func TestDurableReservationsDoNotRefuse(t *testing.T) {
	s := newServer(t, Config{DurableMaxBytes: 1 << 50}, "")
	dir := sockDir(t)
	var chans []string
	for i := range 4 {
		chans = append(chans, fmt.Sprintf("dur%d", i))
	}
	attach(t, s, dir, "p", "a", Policy{Durable: chans})
	for _, ch := range chans {
		if err := s.Publish(context.Background(), "p", ch, []byte(`{"n":1}`)); err != nil {
			t.Fatalf("publish on %s: %v", ch, err)
		}
	}
}
