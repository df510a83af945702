package e2e

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/daemon/daemontest"
)

// TestEgressSurvivesDaemonRestart: an agent fetching an allowed name over
// and over keeps succeeding across a kill -9 and restart of the daemon
// (its egress gateway is re-attached to the agent's namespace, with the
// same DNS mappings), and an unlisted name stays refused.
func TestEgressSurvivesDaemonRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprintf(w, "pong %s", r.Host)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	d := daemontest.Start(t, daemontest.Options{Config: daemontest.DefaultConfig + "egress:\n  hosts:\n    api.allowed.test: 127.0.0.1\n"})
	dir := daemontest.Project(t, map[string]string{
		"cortex.yaml": manifest("net", pyAgent("poller", "poller:main", "    capabilities:\n      - network.access: [\"api.allowed.test\"]\n")),
		"poller.py": fmt.Sprintf(`import time, urllib.request
def main():
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the transparent path
    while True:
        for url in ("http://api.allowed.test:%d/ping", "http://unlisted.example:%d/"):
            try:
                print(url.split("/")[2], "ok", opener.open(url, timeout=3).read().decode(), flush=True)
            except Exception as e:
                print(url.split("/")[2], "refused", type(e).__name__, flush=True)
        time.sleep(0.1)
`, port, port),
	})
	d.MustCLI(dir, "run", "-d", ".")
	d.WaitAgent("net", "poller", 20*time.Second, "running", func(a api.AgentStatus) bool { return a.State == api.Running })
	waitHits := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for hits.Load() < n && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if hits.Load() < n {
			t.Fatalf("only %d requests reached the allowed server, want %d\nlogs:\n%s", hits.Load(), n, d.MustCLI("", "logs", "--tail", "20", "net/poller"))
		}
	}
	waitHits(3)
	d.Kill9()
	d.StartDaemon()
	before := hits.Load()
	waitHits(before + 5)
	out := d.MustCLI("", "logs", "net/poller")
	if strings.Contains(out, "unlisted.example:"+fmt.Sprint(port)+" ok") {
		t.Fatalf("an unlisted name was reached:\n%s", out)
	}
	if !strings.Contains(out, "egress denied") || !strings.Contains(out, "name=unlisted.example") {
		t.Errorf("refusals are not in the agent's log:\n%s", out)
	}
	in := inspect(t, d, "net/poller")
	if in.Egress == nil {
		t.Errorf("inspect shows no egress counters after the restart")
	}
}
