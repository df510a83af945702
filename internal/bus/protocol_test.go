package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/bus/bustest"
	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/events"
	"github.com/cortexrt/cortex/internal/kerneltest"
	"github.com/cortexrt/cortex/internal/runtimes/runtimestest"
	"github.com/cortexrt/cortex/sdk"
)

func dial(t testing.TB, path string) *bustest.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := bustest.Dial(ctx, path)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustSubscribe(t testing.TB, c *bustest.Client, channel string) bustest.Line {
	t.Helper()
	l, err := c.Subscribe(channel)
	if err != nil {
		t.Fatalf("subscribe %s: %v", channel, err)
	}
	return l
}

func mustPublish(t testing.TB, c *bustest.Client, channel string, payload any) bustest.Line {
	t.Helper()
	l, err := c.Publish(channel, payload)
	if err != nil {
		t.Fatalf("publish %s: %v", channel, err)
	}
	return l
}

func TestHello(t *testing.T) {
	s := newServer(t, Config{MaxPayload: 12345}, "")
	c := dial(t, attach(t, s, sockDir(t), "proj", "agent-1", Policy{}))
	want := bustest.Line{Op: "hello", Protocol: ProtocolVersion, Project: "proj", Agent: "agent-1", Node: s.NodeID(), MaxPayload: 12345}
	if diff := cmp.Diff(want, c.Hello); diff != "" {
		t.Errorf("hello (-want +got):\n%s", diff)
	}
}

// TestProjectScoping: the same channel name in two projects never meets.
func TestProjectScoping(t *testing.T) {
	s := newServer(t, Config{}, "")
	dir := sockDir(t)
	a := dial(t, attach(t, s, dir, "A", "pub", Policy{}))
	aSub := dial(t, attach(t, s, dir, "A", "sub", Policy{}))
	bSub := dial(t, attach(t, s, dir, "B", "sub", Policy{}))
	mustSubscribe(t, aSub, "analysis-results")
	mustSubscribe(t, bSub, "analysis-results")
	opCh, err := s.Subscribe(context.Background(), "B", "analysis-results")
	if err != nil {
		t.Fatal(err)
	}
	mustPublish(t, a, "analysis-results", map[string]any{"from": "A"})
	got, err := aSub.Next(wait)
	if err != nil || string(got.Payload) != `{"from":"A"}` {
		t.Fatalf("A's subscriber: %+v %v", got, err)
	}
	if l, err := bSub.Next(500 * time.Millisecond); !bustest.IsTimeout(err) {
		t.Fatalf("B's subscriber received %+v (err %v); projects must not meet", l, err)
	}
	select {
	case m := <-opCh:
		t.Fatalf("B's operator subscription received %+v", m)
	default:
	}
	if st := statsOf(s, "B", "analysis-results"); st.Published != 0 {
		t.Errorf("B stats %+v: nothing should be published there", st)
	}
}

// TestSenderIdentity: subscribers see the socket's identity, whatever the
// publisher puts in its request.
func TestSenderIdentity(t *testing.T) {
	s := newServer(t, Config{}, "")
	dir := sockDir(t)
	mallory := dial(t, attach(t, s, dir, "p", "mallory", Policy{}))
	sub := dial(t, attach(t, s, dir, "p", "alice", Policy{}))
	mustSubscribe(t, sub, "orders")
	if _, err := mallory.Request(map[string]any{"op": "publish", "channel": "orders", "from": "alice",
		"agent": "alice", "project": "other", "node": "n0", "payload": map[string]any{"from": "alice"}}); err != nil {
		t.Fatal(err)
	}
	m, err := sub.Next(wait)
	if err != nil {
		t.Fatal(err)
	}
	if m.From != "mallory" || m.Node != s.NodeID() || m.Channel != "orders" {
		t.Errorf("message from=%q node=%q channel=%q, want from mallory on this node", m.From, m.Node, m.Channel)
	}
}

// TestSocketOwnership runs clients as other uids: the socket's mode keeps
// them out, and the peer-credential check refuses them even when the mode
// is loosened.
func TestSocketOwnership(t *testing.T) {
	kerneltest.RequireRoot(t)
	s := newServer(t, Config{}, "")
	dir := sockDir(t)
	const owner, other = 4242, 65534
	path := filepath.Join(dir, "agent.sock")
	att, err := s.ServeAgent(context.Background(), Identity{"p", "agent"}, Policy{}, path, owner, owner)
	if err != nil {
		t.Fatal(err)
	}
	defer att.Close()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 || sys.Uid != owner || sys.Gid != owner {
		t.Fatalf("socket mode %v uid %d gid %d, want socket 0600 %d:%d", st.Mode(), sys.Uid, sys.Gid, owner, owner)
	}
	// The other uids must be able to read the SDK and the script wherever
	// the repository is checked out: give them a world-readable copy.
	pub := sockDir(t)
	if err := sdk.WriteTo(pub); err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(testdata("py", "agent.py"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pub, "agent.py"), script, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(uid uint32) []string {
		p := bustest.PythonWith(t, runtimestest.Python(t).Path, filepath.Join(pub, "agent.py"), []string{"try-pub", "ch"},
			bustest.Options{Env: []string{"CORTEX_BUS=" + path, "PYTHONPATH=" + sdk.PythonPath(pub)}, Dir: pub,
				Cred: &syscall.Credential{Uid: uid, Gid: uid}})
		if exited, _ := p.Wait(wait); !exited {
			t.Fatal("client did not exit")
		}
		return append(p.Lines(), p.Stderr())
	}
	for _, tc := range []struct {
		name string
		uid  uint32
		mode os.FileMode
		want string
	}{
		{"owner", owner, 0o600, "ok "},
		{"other-uid", other, 0o600, "error PermissionDenied forbidden cannot connect to the bus socket"},
		{"other-uid-loose-mode", other, 0o666, "error PermissionDenied forbidden this bus socket belongs to another user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			out := run(tc.uid)
			if !strings.HasPrefix(out[0], tc.want) {
				t.Errorf("uid %d got %q, want %q", tc.uid, out, tc.want)
			}
		})
	}
}

func TestACL(t *testing.T) {
	s := newServer(t, Config{}, "")
	ev := events.New()
	denied := ev.Subscribe("test", 100, events.OfType(events.BusDenied))
	s.SetEvents(ev)
	c := dial(t, attach(t, s, sockDir(t), "p", "a", Policy{
		Publish:   []string{"results", "jobs.*", "logs.>"},
		Subscribe: []string{},
	}))
	for _, tc := range []struct {
		channel string
		ok      bool
	}{
		{"results", true},
		{"results2", false},
		{"jobs.a", true},
		{"jobs.a.b", false},
		{"jobs", false},
		{"logs.x", true},
		{"logs.x.y", true},
		{"logs", false},
	} {
		t.Run("publish-"+tc.channel, func(t *testing.T) {
			_, err := c.Publish(tc.channel, map[string]any{})
			var el *bustest.ErrorLine
			switch {
			case tc.ok && err != nil:
				t.Errorf("publish refused: %v", err)
			case !tc.ok && (!errors.As(err, &el) || el.Code != CodeForbidden || el.Hint == ""):
				t.Errorf("publish to %s: err %v, want forbidden with a hint", tc.channel, err)
			}
		})
	}
	t.Run("subscribe-empty-list", func(t *testing.T) {
		_, err := c.Subscribe("results")
		var el *bustest.ErrorLine
		if !errors.As(err, &el) || el.Code != CodeForbidden {
			t.Errorf("subscribe with empty bus.subscribe: %v, want forbidden", err)
		}
	})
	// Every refusal, and nothing else, is an event naming the agent, the
	// operation and the channel.
	ev.Close()
	var got []string
	for e := range denied.C {
		d := e.Detail.(events.BusDeniedDetail)
		if e.Project != "p" || e.Agent != "a" {
			t.Errorf("denial event names %s/%s, want p/a", e.Project, e.Agent)
		}
		got = append(got, d.Op+" "+d.Channel)
	}
	want := []string{"publish results2", "publish jobs.a.b", "publish jobs", "publish logs", "subscribe results"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("bus.denied events (-want +got):\n%s", diff)
	}
}

// TestRequestErrors: malformed and oversized requests get error replies
// with their id, and the connection keeps working.
func TestRequestErrors(t *testing.T) {
	s := newServer(t, Config{MaxPayload: 1024}, "")
	c := dial(t, attach(t, s, sockDir(t), "p", "a", Policy{}))
	big := strings.Repeat("x", 1100)
	huge := strings.Repeat("y", 100_000) // beyond the line limit: discarded unread
	for _, tc := range []struct {
		name string
		line string
		code string
	}{
		{"not-json", `{"op":"publish","id":"7",`, CodeInvalid},
		{"unknown-op", `{"op":"explode","id":"7"}`, CodeInvalid},
		{"payload-array", `{"op":"publish","id":"7","channel":"c","payload":[1,2]}`, CodeInvalid},
		{"payload-missing", `{"op":"publish","id":"7","channel":"c"}`, CodeInvalid},
		{"payload-over-limit", `{"op":"publish","id":"7","channel":"c","payload":{"x":"` + big + `"}}`, CodePayloadTooLarge},
		{"line-over-limit", `{"op":"publish","id":"7","channel":"c","payload":{"x":"` + huge + `"}}`, CodePayloadTooLarge},
		{"bad-channel", `{"op":"publish","id":"7","channel":"a..b","payload":{}}`, CodeInvalid},
		{"wildcard-channel", `{"op":"subscribe","id":"7","channel":"a.*"}`, CodeInvalid},
		{"bad-msg-id", `{"op":"publish","id":"7","channel":"c","msg_id":"has space","payload":{}}`, CodeInvalid},
		{"unknown-sub", `{"op":"unsubscribe","id":"7","sub":"99"}`, CodeNotFound},
		{"unknown-ack", `{"op":"ack","id":"7","ack":"99"}`, CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.SendRaw([]byte(tc.line + "\n")); err != nil {
				t.Fatal(err)
			}
			_ = c.Conn().SetReadDeadline(time.Now().Add(wait))
			l, err := c.Next(wait)
			var el *bustest.ErrorLine
			if !errors.As(err, &el) {
				t.Fatalf("got %+v, %v; want an error line", l, err)
			}
			if el.ID != "7" || el.Code != tc.code || el.Line.Error == "" {
				t.Errorf("error line %+v, want id 7 code %s", el.Line, tc.code)
			}
			// The connection still works.
			if _, err := c.Request(map[string]any{"op": "ping"}); err != nil {
				t.Fatalf("ping after error: %v", err)
			}
		})
	}
	if st := statsOf(s, "p", "c"); st.Published != 0 {
		t.Errorf("refused publishes were counted: %+v", st)
	}
}

func TestOperatorAPI(t *testing.T) {
	s := newServer(t, Config{MaxPayload: 64}, "")
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := s.Subscribe(ctx, "p", "news")
	if err != nil {
		t.Fatal(err)
	}
	agent := dial(t, attach(t, s, sockDir(t), "p", "writer", Policy{}))
	mustPublish(t, agent, "news", map[string]any{"n": 1})
	if err := s.Publish(context.Background(), "p", "news", []byte("{\n \"n\": 2\n}")); err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct{ from, payload string }{{"writer", `{"n":1}`}, {"", `{"n":2}`}} {
		select {
		case m := <-ch:
			if m.From != want.from || string(m.Payload) != want.payload || m.Project != "p" || m.Channel != "news" || m.ID == "" || m.Time.IsZero() {
				t.Errorf("message %d = %+v, want from %q payload %s", i, m, want.from, want.payload)
			}
		case <-time.After(wait):
			t.Fatal("operator subscription received nothing")
		}
	}
	for _, tc := range []struct {
		name, project, channel, payload string
		wantErr                         error
	}{
		{"too-large", "p", "news", `{"x":"` + strings.Repeat("a", 100) + `"}`, ErrPayloadTooLarge},
		{"array", "p", "news", `[1]`, nil},
		{"bad-json", "p", "news", `{"a":}`, nil},
		{"bad-channel", "p", "bad channel", `{}`, nil},
		{"bad-project", "", "news", `{}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Publish(context.Background(), tc.project, tc.channel, []byte(tc.payload))
			if err == nil {
				t.Fatal("publish accepted")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err %v, want %v", err, tc.wantErr)
			}
		})
	}
	cancel()
	select {
	case _, ok := <-ch:
		for ok {
			_, ok = <-ch
		}
	case <-time.After(wait):
		t.Fatal("subscription channel not closed after ctx cancel")
	}
	want := api.BusChannelStats{Project: "p", Channel: "news", Published: 2, Delivered: 2}
	if diff := cmp.Diff(want, statsOf(s, "p", "news")); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// TestAttachLifecycle: a stale socket is replaced, Close removes the socket
// and ends connections, and a closed server refuses new work.
func TestAttachLifecycle(t *testing.T) {
	s := newServer(t, Config{}, "")
	dir := sockDir(t)
	path := filepath.Join(dir, "a.sock")
	stale := attach(t, s, dir, "p", "old", Policy{})
	if err := os.Rename(stale, path); err != nil {
		t.Fatal(err)
	}
	att, err := s.ServeAgent(context.Background(), Identity{"p", "a"}, Policy{}, path, -1, -1)
	if err != nil {
		t.Fatalf("attach over a stale socket: %v", err)
	}
	c := dial(t, path)
	if c.Hello.Agent != "a" {
		t.Fatalf("hello from %q, want a", c.Hello.Agent)
	}
	mustSubscribe(t, c, "x")
	if err := att.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket still there after Close: %v", err)
	}
	if _, err := c.Next(wait); err == nil || bustest.IsTimeout(err) {
		t.Errorf("connection not ended by Close: %v", err)
	}
	waitSubscribers(t, s, "p", "x", 0)

	regular := filepath.Join(dir, "file")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ServeAgent(context.Background(), Identity{"p", "a"}, Policy{}, regular, -1, -1); err == nil {
		t.Error("attach over a regular file succeeded")
	}
	for _, tc := range []struct {
		name string
		id   Identity
		pol  Policy
	}{
		{"empty-project", Identity{"", "a"}, Policy{}},
		{"agent-with-space", Identity{"p", "a b"}, Policy{}},
		{"bad-pattern", Identity{"p", "a"}, Policy{Publish: []string{"a.>.b"}}},
		{"durable-wildcard", Identity{"p", "a"}, Policy{Durable: []string{"a.*"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.ServeAgent(context.Background(), tc.id, tc.pol, filepath.Join(dir, "x.sock"), -1, -1); err == nil {
				t.Error("attach accepted")
			}
		})
	}
	s.Close()
	if _, err := s.ServeAgent(context.Background(), Identity{"p", "a"}, Policy{}, filepath.Join(dir, "y.sock"), -1, -1); err == nil {
		t.Error("attach on a closed server succeeded")
	}
	if err := s.Publish(context.Background(), "p", "x", []byte(`{}`)); err == nil {
		t.Error("publish on a closed server succeeded")
	}
}

func TestMaxConnsPerAgent(t *testing.T) {
	s := newServer(t, Config{MaxConnsPerAgent: 2}, "")
	path := attach(t, s, sockDir(t), "p", "a", Policy{})
	dial(t, path)
	dial(t, path)
	_, err := bustest.Dial(context.Background(), path)
	var el *bustest.ErrorLine
	if !errors.As(err, &el) || el.Code != CodeUnavailable {
		t.Errorf("third connection: %v, want unavailable", err)
	}
}

// TestSlowSubscriber: a subscriber that reads slowly does not slow a fast
// one or the publisher; what it cannot take is dropped and counted.
func TestSlowSubscriber(t *testing.T) {
	s := newServer(t, Config{SubscriberBuffer: 512}, "")
	dir := sockDir(t)
	pubSock := attach(t, s, dir, "p", "pub", Policy{})
	fastSock := attach(t, s, dir, "p", "fast", Policy{})
	slowSock := attach(t, s, dir, "p", "slow", Policy{})
	slow := bustest.Python(t, testdata("py", "agent.py"), []string{"sub", "ticks", "--sleep", "0.2"}, busEnv(slowSock))
	fast := bustest.Python(t, testdata("py", "agent.py"), []string{"sub", "ticks"}, busEnv(fastSock))
	waitSubscribers(t, s, "p", "ticks", 2)

	// 2000 messages of 1 KiB at about 1000/s: far beyond the slow
	// subscriber's 5/s, buffer and socket, well within the fast one's
	// pace (with half a second of buffer for a loaded machine).
	const n = 2000
	pub := dial(t, pubSock)
	pad := strings.Repeat("z", 1024)
	for i := 0; i < n; i++ {
		mustPublish(t, pub, "ticks", map[string]any{"n": i, "pad": pad})
		if i%10 == 9 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if !fast.WaitFor(wait, func(l []string) bool { return countMessages(l) >= n }) {
		t.Fatalf("fast subscriber got %d of %d; stats %+v", countMessages(fast.Lines()), n, statsOf(s, "p", "ticks"))
	}
	if got := len(distinctN(parseReceived(t, fast.Lines()))); got != n {
		t.Errorf("fast subscriber got %d distinct, want %d", got, n)
	}
	st := statsOf(s, "p", "ticks")
	slowGot := countMessages(slow.Lines())
	if st.Dropped == 0 || slowGot >= n {
		t.Errorf("slow subscriber got %d, stats %+v: want drops counted", slowGot, st)
	}
	if st.Published != n || st.Dropped > n {
		t.Errorf("stats %+v: want published %d", st, n)
	}
	t.Logf("slow subscriber received %d so far, dropped %d", slowGot, st.Dropped)
}

func TestMessageLineEncoding(t *testing.T) {
	e := &envelope{ID: "id1", From: "a\"b", Node: "n1", Time: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC), Payload: []byte(`{"k":"v"}`)}
	for _, tc := range []struct {
		name  string
		seq   uint64
		ack   string
		redel bool
	}{
		{"plain", 0, "", false},
		{"durable", 7, "12", false},
		{"redelivered", 7, "13", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := appendMessageLine(nil, "3", "ch.x", e, tc.seq, tc.ack, tc.redel)
			if b[len(b)-1] != '\n' || strings.Count(string(b), "\n") != 1 {
				t.Fatalf("not one line: %q", b)
			}
			var got bustest.Line
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("%q: %v", b, err)
			}
			want := bustest.Line{Op: "message", Sub: "3", Channel: "ch.x", MsgID: "id1", From: "a\"b", Node: "n1",
				Time: "2025-01-02T03:04:05.000000006Z", Seq: tc.seq, Ack: tc.ack, Redelivered: tc.redel, Payload: []byte(`{"k":"v"}`)}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestExtractID(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{`{"op":"publish","id":"42","payload":{"id":"no"}}`, "42"},
		{`{"op":"publish","payload":{"id":"no"},"id":"late"}`, ""},
		{`  { "id" : "a-b" , "op":"x"`, "a-b"},
		{`not json`, ""},
	} {
		t.Run(tc.line, func(t *testing.T) {
			if got := extractID([]byte(tc.line)); got != tc.want {
				t.Errorf("extractID = %q, want %q", got, tc.want)
			}
		})
	}
}

func ExampleServer_Publish() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "bus-example")
	defer os.RemoveAll(dir)
	s, err := New(ctx, config.DefaultBus(), filepath.Join(dir, "store"), nil)
	if err != nil {
		panic(err)
	}
	defer s.Close()
	sub, _ := s.Subscribe(ctx, "demo", "greetings")
	_ = s.Publish(ctx, "demo", "greetings", []byte(`{"hello": "world"}`))
	m := <-sub
	fmt.Println(m.Channel, string(m.Payload))
	// Output: greetings {"hello":"world"}
}

// TestChannelLimit: a project cannot grow the daemon's per-channel state
// without bound.
func TestChannelLimit(t *testing.T) {
	s := newServer(t, Config{MaxChannelsPerProject: 3}, "")
	dir := sockDir(t)
	c := dial(t, attach(t, s, dir, "p", "a", Policy{}))
	other := dial(t, attach(t, s, dir, "q", "a", Policy{}))
	for i := 0; i < 3; i++ {
		mustPublish(t, c, fmt.Sprintf("ch%d", i), map[string]any{})
	}
	for _, tc := range []struct {
		name string
		do   func() error
		ok   bool
	}{
		{"publish-new", func() error { _, err := c.Publish("ch3", map[string]any{}); return err }, false},
		{"subscribe-new", func() error { _, err := c.Subscribe("ch4"); return err }, false},
		{"operator-new", func() error { return s.Publish(context.Background(), "p", "ch5", []byte(`{}`)) }, false},
		{"publish-existing", func() error { _, err := c.Publish("ch0", map[string]any{}); return err }, true},
		{"subscribe-existing", func() error { _, err := c.Subscribe("ch1"); return err }, true},
		{"other-project", func() error { _, err := other.Publish("ch9", map[string]any{}); return err }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "bus limit") {
				t.Errorf("err = %v, want the limit named", err)
			}
		})
	}
}
