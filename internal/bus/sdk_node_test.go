package bus

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/bus/bustest"
)

// TestCrossLanguage: Node publishes to Python and Python to Node, over the
// SDKs and real sockets, in order and with the sender's identity.
func TestCrossLanguage(t *testing.T) {
	s := newServer(t, Config{}, "")
	dir := sockDir(t)
	pySock := attach(t, s, dir, "p", "py-agent", Policy{})
	nodeSock := attach(t, s, dir, "p", "node-agent", Policy{})
	py := func(args ...string) *bustest.Proc {
		return bustest.Python(t, testdata("py", "agent.py"), args, busEnv(pySock))
	}
	node := func(args ...string) *bustest.Proc {
		return bustest.Node(t, testdata("node", "agent.js"), args, busEnv(nodeSock))
	}
	const n = 300
	for _, tc := range []struct {
		name       string
		sub, pub   func(args ...string) *bustest.Proc
		wantSender string
		pubExtra   []string
	}{
		{"node-to-python", py, node, "node-agent", nil},
		{"python-to-node", node, py, "py-agent", nil},
		{"node-parallel-to-node", node, node, "node-agent", []string{"--parallel"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch := "x-" + tc.name
			sub := tc.sub("sub", ch)
			waitSubscribers(t, s, "p", ch, 1)
			pub := tc.pub(append([]string{"pub", ch, fmt.Sprint(n)}, tc.pubExtra...)...)
			if !pub.WaitLine(wait, "DONE") {
				t.Fatalf("publisher: %q %s", pub.Lines(), pub.Stderr())
			}
			if !sub.WaitFor(wait, func(l []string) bool { return countMessages(l) >= n }) {
				t.Fatalf("subscriber got %d of %d: %s", countMessages(sub.Lines()), n, sub.Stderr())
			}
			got := parseReceived(t, sub.Lines())
			if len(distinctN(got)) != n {
				t.Errorf("distinct = %d, want %d", len(distinctN(got)), n)
			}
			for i, r := range got {
				if r.Sender != tc.wantSender || r.Channel != ch {
					t.Fatalf("message %+v: want sender %s", r, tc.wantSender)
				}
				if tc.pubExtra == nil && int(r.Payload["n"].(float64)) != i {
					t.Fatalf("message %d has n=%v: out of order", i, r.Payload["n"])
				}
			}
		})
	}
}

func TestNodeErrors(t *testing.T) {
	s := newServer(t, Config{MaxPayload: 4096}, "")
	sock := attach(t, s, sockDir(t), "p", "limited", Policy{Publish: []string{"results.*"}, Subscribe: []string{"tasks"}})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"publish-allowed", []string{"try-pub", "results.fast"}, "ok "},
		{"publish-denied", []string{"try-pub", "secrets"}, `error PermissionDenied forbidden agent "limited" may not publish to channel "secrets"`},
		{"publish-too-large", []string{"try-pub", "results.big", "--size", "5000"}, "error PayloadTooLarge payload_too_large payload is 50"},
		{"publish-bad-channel", []string{"try-pub", "bad channel"}, "error InvalidRequest invalid"},
		{"subscribe-allowed", []string{"try-sub", "tasks"}, "ok"},
		{"subscribe-denied", []string{"try-sub", "results.fast"}, `error PermissionDenied forbidden agent "limited" may not subscribe`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := bustest.Node(t, testdata("node", "agent.js"), tc.args, busEnv(sock))
			if exited, _ := p.Wait(wait); !exited {
				t.Fatal("agent did not exit (an idle publish connection must not keep node alive)")
			}
			lines := p.Lines()
			if len(lines) != 1 || !strings.HasPrefix(lines[0], tc.want) {
				t.Fatalf("agent printed %q, want a line starting %q; stderr: %s", lines, tc.want, p.Stderr())
			}
		})
	}
}

// TestNodeReconnect: a Node subscriber lives through a server restart.
func TestNodeReconnect(t *testing.T) {
	store := t.TempDir()
	dir := sockDir(t)
	path := dir + "/node.sock"
	open := func() *Server {
		s, err := New(context.Background(), Config{}, store, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.ServeAgent(context.Background(), Identity{"p", "n"}, Policy{Durable: []string{"d"}}, path, -1, -1); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	defer func() { s.Close() }()
	live := bustest.Node(t, testdata("node", "agent.js"), []string{"sub", "live"}, busEnv(path))
	durable := bustest.Node(t, testdata("node", "agent.js"), []string{"sub", "d"}, busEnv(path))
	waitSubscribers(t, s, "p", "live", 1)
	waitSubscribers(t, s, "p", "d", 1)
	for _, ch := range []string{"live", "d"} {
		if err := s.Publish(context.Background(), "p", ch, []byte(`{"n":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []*bustest.Proc{live, durable} {
		if !p.WaitFor(wait, func(l []string) bool { return countMessages(l) == 1 }) {
			t.Fatalf("no first message: %q %s", p.Lines(), p.Stderr())
		}
	}
	s.Close()
	// The subscriber says once on stderr that it lost the bus.
	if !waitStderr(live, "cannot reach the bus") {
		t.Fatalf("the Node subscriber did not report the lost bus: %q", live.Stderr())
	}
	s = open()
	// The durable message published while the subscriber reconnects is
	// stored; the live one needs the subscriber back first.
	if err := s.Publish(context.Background(), "p", "d", []byte(`{"n":2}`)); err != nil {
		t.Fatal(err)
	}
	waitSubscribers(t, s, "p", "live", 1)
	if err := s.Publish(context.Background(), "p", "live", []byte(`{"n":2}`)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*bustest.Proc{live, durable} {
		if !p.WaitFor(wait, func(l []string) bool { return len(distinctN(parseReceived(t, l))) == 2 }) {
			t.Fatalf("after restart got %q; stderr %s", p.Lines(), p.Stderr())
		}
	}
}
