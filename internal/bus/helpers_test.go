package bus

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/bus/bustest"
)

// wait is the generous deadline for anything a test waits on.
const wait = 30 * time.Second

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("BUS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newServer starts a bus on storeDir ("" = a fresh temp dir); the test's
// cleanup closes it.
func newServer(t testing.TB, cfg Config, storeDir string) *Server {
	t.Helper()
	if storeDir == "" {
		storeDir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, err := New(ctx, cfg, storeDir, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// sockDir is a directory for agent sockets that every uid can traverse.
func sockDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "cxbus")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// attach attaches an agent on a socket in dir owned by the current user.
func attach(t testing.TB, s *Server, dir, project, agent string, pol Policy) string {
	t.Helper()
	path := filepath.Join(dir, project+"-"+agent+".sock")
	c, err := s.ServeAgent(context.Background(), Identity{Project: project, Agent: agent}, pol, path, -1, -1)
	if err != nil {
		t.Fatalf("Attach %s/%s: %v", project, agent, err)
	}
	t.Cleanup(func() { c.Close() })
	return path
}

func busEnv(sock string) bustest.Options {
	return bustest.Options{Env: []string{"CORTEX_BUS=" + sock}}
}

func testdata(parts ...string) string {
	p, err := filepath.Abs(filepath.Join(append([]string{"testdata"}, parts...)...))
	if err != nil {
		panic(err)
	}
	return p
}

// waitSubscribers waits until a channel has n subscribers.
func waitSubscribers(t testing.TB, s *Server, project, channel string, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if statsOf(s, project, channel).Subscribers == n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("channel %s/%s never reached %d subscribers: %+v", project, channel, n, statsOf(s, project, channel))
}

func statsOf(s *Server, project, channel string) api.BusChannelStats {
	for _, st := range s.Stats() {
		if st.Project == project && st.Channel == channel {
			return st
		}
	}
	return api.BusChannelStats{Project: project, Channel: channel}
}

// received is one message line printed by testdata/py/agent.py or
// testdata/node/agent.js.
type received struct {
	Payload     map[string]any `json:"payload"`
	Sender      string         `json:"sender"`
	ID          string         `json:"id"`
	Seq         *uint64        `json:"seq"`
	Redelivered bool           `json:"redelivered"`
	Durable     bool           `json:"durable"`
	Channel     string         `json:"channel"`
}

func parseReceived(t testing.TB, lines []string) []received {
	t.Helper()
	var out []received
	for _, l := range lines {
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var r received
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("agent printed %q: %v", l, err)
		}
		if r.Payload != nil {
			out = append(out, r)
		}
	}
	return out
}

// distinctN collects the distinct payload "n" values.
func distinctN(rs []received) map[int]int {
	m := map[int]int{}
	for _, r := range rs {
		if v, ok := r.Payload["n"].(float64); ok {
			m[int(v)]++
		}
	}
	return m
}

func countMessages(lines []string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, `{"payload"`) {
			n++
		}
	}
	return n
}
