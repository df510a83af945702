package bus

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// clusterNATS is a standalone NATS server with JetStream and a token, as
// the Helm chart runs it.
func clusterNATS(t *testing.T, token string) string {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		Authorization: token, NoSigs: true, MaxPayload: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns.ClientURL()
}

func remote(t *testing.T, url, token string) *Server {
	t.Helper()
	s, err := NewRemote(context.Background(), Config{}, url, testLogger(t), nats.Token(token))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestRemoteAcrossSidecars: two buses connected to one NATS, as the bus
// sidecars of two pods are: a message published on one agent's socket
// reaches the other's, durable channels keep what was published before
// the subscriber came, and ACLs hold on each side.
func TestRemoteAcrossSidecars(t *testing.T) {
	url := clusterNATS(t, "s3cret")
	podA, podB := remote(t, url, "s3cret"), remote(t, url, "s3cret")
	dir := sockDir(t)
	pubPath := attach(t, podA, dir, "swarm", "researcher", Policy{Publish: []string{"analysis-results", "reports"}, Subscribe: []string{}, Durable: []string{"analysis-results"}})
	subPath := attach(t, podB, dir, "swarm", "writer", Policy{Subscribe: []string{"analysis-results", "live"}, Durable: []string{"analysis-results"}})

	pub := dial(t, pubPath)
	// Durable: published before the subscriber exists.
	for i := 0; i < 3; i++ {
		mustPublish(t, pub, "analysis-results", map[string]any{"n": i})
	}
	sub := dial(t, subPath)
	if l := mustSubscribe(t, sub, "analysis-results"); !l.Durable {
		t.Fatalf("subscribe reply %+v, want durable", l)
	}
	for i := 0; i < 3; i++ {
		m, err := sub.Next(wait)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		var p struct{ N int }
		_ = json.Unmarshal(m.Payload, &p)
		if p.N != i || m.From != "researcher" || m.Channel != "analysis-results" {
			t.Fatalf("message %d: %+v", i, m)
		}
		if err := sub.Ack(m.Ack); err != nil {
			t.Fatal(err)
		}
	}
	// Core channel: live delivery across the two servers.
	mustSubscribe(t, sub, "live")
	// researcher may not publish to "live": the ACL of pod A holds.
	if l, err := pub.Publish("live", map[string]any{"x": 1}); err == nil || l.Code != "forbidden" {
		t.Fatalf("publish outside the ACL: %+v %v", l, err)
	}
	// writer's bus.publish is unset (every channel of its project).
	other := dial(t, subPath)
	mustPublish(t, other, "live", map[string]any{"hello": "pod"})
	m, err := sub.Next(wait)
	if err != nil || m.Channel != "live" || m.From != "writer" {
		t.Fatalf("live message: %+v %v", m, err)
	}
	// Another project on the same NATS sees nothing of this one.
	stranger := attach(t, podB, dir, "other", "spy", Policy{})
	spy := dial(t, stranger)
	mustSubscribe(t, spy, "live")
	mustPublish(t, other, "live", map[string]any{"second": true})
	if _, err := sub.Next(wait); err != nil {
		t.Fatal(err)
	}
	if m, err := spy.Next(200 * time.Millisecond); err == nil {
		t.Fatalf("a message crossed projects: %+v", m)
	}
}

func TestRemoteRefusesBadToken(t *testing.T) {
	url := clusterNATS(t, "right")
	_, err := NewRemote(context.Background(), Config{}, url, testLogger(t), nats.Token("wrong"))
	if err == nil || !errdefs.IsUnavailable(err) || !strings.Contains(errdefs.HintOf(err), "token") {
		t.Fatalf("NewRemote with a wrong token: %v", err)
	}
}
