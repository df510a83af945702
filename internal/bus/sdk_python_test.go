package bus

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cortexrt/cortex/internal/bus/bustest"
	"github.com/cortexrt/cortex/internal/runtimes/runtimestest"
)

// waitStderr waits until p has written want to stderr.
func waitStderr(p *bustest.Proc, want string) bool {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if strings.Contains(p.Stderr(), want) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// TestSeedSnippet runs the product's seed code unchanged: agent A publishes
// with the Python SDK, agent B (another process) prints the score.
func TestSeedSnippet(t *testing.T) {
	s := newServer(t, Config{}, "")
	dir := sockDir(t)
	sockA := attach(t, s, dir, "alpha", "a", Policy{})
	sockB := attach(t, s, dir, "alpha", "b", Policy{})

	b := bustest.Python(t, testdata("seed", "agent_b.py"), nil, busEnv(sockB))
	waitSubscribers(t, s, "alpha", "analysis-results", 1)
	a := bustest.Python(t, testdata("seed", "agent_a.py"), nil, busEnv(sockA))
	if exited, err := a.Wait(wait); !exited || err != nil {
		t.Fatalf("agent A: exited=%v err=%v stderr=%s", exited, err, a.Stderr())
	}
	if !b.WaitLine(wait, "0.94") {
		t.Fatalf("agent B printed %q, want 0.94; stderr: %s", b.Lines(), b.Stderr())
	}

	// The design's one-file form: publish, then loop over the channel.
	d := bustest.Python(t, testdata("seed", "design.py"), nil, busEnv(sockA))
	if !b.WaitFor(wait, func(l []string) bool { return len(l) >= 2 }) {
		t.Fatalf("agent B did not see the design snippet's publish: %q", b.Lines())
	}
	waitSubscribers(t, s, "alpha", "analysis-results", 2)
	if err := s.Publish(context.Background(), "alpha", "analysis-results", []byte(`{"score": 0.5}`)); err != nil {
		t.Fatal(err)
	}
	if !d.WaitLine(wait, "0.5") {
		t.Fatalf("design snippet printed %q, want 0.5; stderr: %s", d.Lines(), d.Stderr())
	}
	if got, want := b.Lines(), []string{"0.94", "0.94", "0.5"}; !b.WaitFor(wait, func(l []string) bool { return len(l) == 3 }) || !cmp.Equal(b.Lines(), want) {
		t.Errorf("agent B lines = %q, want %q", got, want)
	}
}

// TestPythonSDK covers the SDK's sync and asyncio forms and the metadata
// a subscriber sees.
func TestPythonSDK(t *testing.T) {
	s := newServer(t, Config{}, "")
	dir := sockDir(t)
	pubSock := attach(t, s, dir, "p", "producer", Policy{})
	subSock := attach(t, s, dir, "p", "consumer", Policy{})
	for _, tc := range []struct {
		name     string
		subAsync bool
		pubAsync bool
	}{
		{"sync", false, false},
		{"async-sub", true, false},
		{"async-pub", false, true},
		{"async-both", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch := "ch-" + tc.name
			subArgs := []string{"sub", ch}
			if tc.subAsync {
				subArgs = append(subArgs, "--async")
			}
			sub := bustest.Python(t, testdata("py", "agent.py"), subArgs, busEnv(subSock))
			waitSubscribers(t, s, "p", ch, 1)
			const n = 200
			pubArgs := []string{"pub", ch, fmt.Sprint(n)}
			if tc.pubAsync {
				pubArgs = append(pubArgs, "--async")
			}
			pub := bustest.Python(t, testdata("py", "agent.py"), pubArgs, busEnv(pubSock))
			if !pub.WaitLine(wait, "DONE") {
				t.Fatalf("publisher did not finish: %q %s", pub.Lines(), pub.Stderr())
			}
			if !sub.WaitFor(wait, func(l []string) bool { return countMessages(l) >= n }) {
				t.Fatalf("subscriber got %d of %d; stderr: %s", countMessages(sub.Lines()), n, sub.Stderr())
			}
			got := parseReceived(t, sub.Lines())
			seen := distinctN(got)
			if len(seen) != n {
				t.Errorf("distinct messages = %d, want %d", len(seen), n)
			}
			for _, r := range got {
				if r.Sender != "producer" || r.Channel != ch || r.ID == "" || r.Durable || r.Seq != nil {
					t.Fatalf("message metadata = %+v, want sender producer on %s, non-durable", r, ch)
				}
			}
			if !tc.pubAsync { // sync publishes arrive in order
				for i, r := range got {
					if int(r.Payload["n"].(float64)) != i {
						t.Fatalf("message %d has n=%v: out of order", i, r.Payload["n"])
					}
				}
			}
		})
	}
}

// TestPythonErrors checks that refusals reach the agent as clear errors.
func TestPythonErrors(t *testing.T) {
	s := newServer(t, Config{MaxPayload: 4096}, "")
	dir := sockDir(t)
	sock := attach(t, s, dir, "p", "limited", Policy{Publish: []string{"results.*"}, Subscribe: []string{"tasks"}})
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
		{"subscribe-denied", []string{"try-sub", "results.fast"}, `error PermissionDenied forbidden agent "limited" may not subscribe to channel "results.fast"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := bustest.Python(t, testdata("py", "agent.py"), tc.args, busEnv(sock))
			if exited, _ := p.Wait(wait); !exited {
				t.Fatal("agent did not exit")
			}
			lines := p.Lines()
			if len(lines) != 1 || !strings.HasPrefix(lines[0], tc.want) {
				t.Fatalf("agent printed %q, want a line starting %q; stderr: %s", lines, tc.want, p.Stderr())
			}
		})
	}
}

// TestPythonReconnect restarts the whole server under a running Python
// subscriber and publisher: both carry on by themselves.
func TestPythonReconnect(t *testing.T) {
	store := t.TempDir()
	dir := sockDir(t)
	s1, err := New(context.Background(), Config{}, store, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s1.Close() }()
	attachOn := func(s *Server, agent string) string {
		path := dir + "/" + agent + ".sock"
		if _, err := s.ServeAgent(context.Background(), Identity{"p", agent}, Policy{}, path, -1, -1); err != nil {
			t.Fatal(err)
		}
		return path
	}
	subSock := attachOn(s1, "sub")
	sub := bustest.Python(t, testdata("py", "agent.py"), []string{"sub", "events"}, busEnv(subSock))
	waitSubscribers(t, s1, "p", "events", 1)
	if err := s1.Publish(context.Background(), "p", "events", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	if !sub.WaitFor(wait, func(l []string) bool { return countMessages(l) == 1 }) {
		t.Fatalf("no first message: %q", sub.Lines())
	}

	s1.Close()
	// The subscriber says once on stderr that it cannot reach the bus and
	// keeps retrying: restart the server only then.
	if !waitStderr(sub, "cannot reach the bus") {
		t.Fatalf("the subscriber did not report the lost bus: %q", sub.Stderr())
	}
	s2, err := New(context.Background(), Config{}, store, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	attachOn(s2, "sub")
	waitSubscribers(t, s2, "p", "events", 1)
	if err := s2.Publish(context.Background(), "p", "events", []byte(`{"n":2}`)); err != nil {
		t.Fatal(err)
	}
	if !sub.WaitFor(wait, func(l []string) bool { return countMessages(l) == 2 }) {
		t.Fatalf("subscriber did not receive after the restart: %q; stderr: %s", sub.Lines(), sub.Stderr())
	}
	got := distinctN(parseReceived(t, sub.Lines()))
	if diff := cmp.Diff(map[int]int{1: 1, 2: 1}, got); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
}

// TestPythonVersions runs the SDK (sync and asyncio) under every Python
// runtime the product supports that this machine has, found as the daemon
// finds interpreters (at least one; CI fails without any).
func TestPythonVersions(t *testing.T) {
	s := newServer(t, Config{}, "")
	dir := sockDir(t)
	sock := attach(t, s, dir, "p", "v", Policy{Durable: []string{"dur"}})
	for _, ip := range runtimestest.Pythons(t) {
		interp, v := ip.Path, ip.Version
		t.Run(ip.Runtime, func(t *testing.T) {
			t.Logf("%s: %s (%s)", ip.Runtime, interp, v)
			for _, mode := range []string{"sync", "async"} {
				ch := "v" + strings.ReplaceAll(v, ".", "_") + "-" + mode
				args := []string{"sub", ch}
				if mode == "async" {
					args = append(args, "--async")
				}
				sub := bustest.PythonWith(t, interp, testdata("py", "agent.py"), args, busEnv(sock))
				waitSubscribers(t, s, "p", ch, 1)
				pub := bustest.PythonWith(t, interp, testdata("py", "agent.py"), []string{"pub", ch, "20", "--async"}, busEnv(sock))
				if !pub.WaitLine(wait, "DONE") || !sub.WaitFor(wait, func(l []string) bool { return countMessages(l) == 20 }) {
					t.Fatalf("%s %s: pub %q %s; sub %q %s", v, mode, pub.Lines(), pub.Stderr(), sub.Lines(), sub.Stderr())
				}
			}
			// Durable acknowledgements with this interpreter.
			pub := bustest.PythonWith(t, interp, testdata("py", "agent.py"), []string{"pub", "dur", "5", "--start", "0"}, busEnv(sock))
			if !pub.WaitLine(wait, "DONE") {
				t.Fatalf("durable pub: %s", pub.Stderr())
			}
			sub := bustest.PythonWith(t, interp, testdata("py", "agent.py"), []string{"sub", "dur", "--async"}, busEnv(sock))
			if !sub.WaitFor(wait, func(l []string) bool { return countMessages(l) >= 5 }) {
				t.Fatalf("durable sub: %q %s", sub.Lines(), sub.Stderr())
			}
			sub.Kill()
		})
	}
}
