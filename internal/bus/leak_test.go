package bus

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/bus/bustest"
)

// TestCloseLeaksNothing: after Close, every goroutine the bus started
// (sockets, connections, pumps, bridges, the embedded server) is gone.
func TestCloseLeaksNothing(t *testing.T) {
	r := bustest.StartRedis(t)
	settle := func() int {
		var n int
		for i := 0; i < 50; i++ {
			n = runtime.NumGoroutine()
			time.Sleep(20 * time.Millisecond)
			if runtime.NumGoroutine() == n {
				break
			}
		}
		return n
	}
	before := settle()
	s, err := New(context.Background(), Config{}, t.TempDir(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := sockDir(t)
	c := dial(t, attach(t, s, dir, "p", "a", Policy{Durable: []string{"d"}}))
	mustSubscribe(t, c, "d")
	mustSubscribe(t, c, "live")
	mustPublish(t, c, "d", map[string]any{"n": 1})
	if _, err := c.Next(wait); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subscribe(context.Background(), "p", "live"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBroker(context.Background(), "p", r.URL()); err != nil {
		t.Fatal(err)
	}
	waitBroker(t, s, "p", true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if settle() <= before {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	var ours []string
	for _, g := range strings.Split(stacks, "\n\n") {
		if strings.Contains(g, "internal/bus") || strings.Contains(g, "nats") || strings.Contains(g, "redis") {
			ours = append(ours, g)
		}
	}
	t.Fatalf("%d goroutines before, %d after Close; bus-related:\n%s", before, runtime.NumGoroutine(), strings.Join(ours, "\n\n"))
}
