package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/daemon/daemontest"
	"github.com/cortexrt/cortex/internal/kaudit"
	"github.com/cortexrt/cortex/internal/kerneltest"
)

// learnManifest grants nothing the agent needs; its comments and order
// must survive --learn --write.
const learnManifest = `# The learner: needs one host, one bus channel and one directory.
version: "1"
project: learner
agents:
  - name: fetcher   # the only agent
    runtime: python3.11
    entrypoint: fetch:main
    restart_policy: "no"
    capabilities:
      # nothing on the bus yet
      - bus.publish: []
`

const learnAgent = `import os, urllib.request
from cortex.bus import publish
def main():
    ok = True
    try:
        print("read:", open("data/input.txt").read().strip())
    except OSError as e:
        print("read failed:", e)
        ok = False
    try:
        print("http:", urllib.request.urlopen("http://data.learn.test:%s/" % os.environ["PORT"], timeout=5).read().decode())
    except Exception as e:
        print("http failed:", e)
        ok = False
    try:
        publish(channel="results", payload={"n": 1})
        print("published")
    except Exception as e:
        print("publish failed:", type(e).__name__, e)
        ok = False
    if not ok:
        raise SystemExit(1)
`

// TestLearn: a run with --learn of an agent that needs one host, one bus
// channel and one read path under the project (left out of the bundle)
// proposes exactly those three lines as a diff of cortex.yaml; --write
// applies them, keeping the file's comments and order; the next plain
// run succeeds.
func TestLearn(t *testing.T) {
	kerneltest.Require(t, "kernel audit records (file system refusals)", kaudit.Probe)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello from the data service") }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	d := daemontest.Start(t, daemontest.Options{Config: daemontest.DefaultConfig + "egress:\n  hosts:\n    data.learn.test: 127.0.0.1\n"})
	dir := daemontest.Project(t, map[string]string{
		"cortex.yaml":    strings.Replace(learnManifest, "    restart_policy", "    env:\n      PORT: \""+port+"\"\n    restart_policy", 1),
		"fetch.py":       learnAgent,
		".cortexignore":  "data/\n",
		"data/input.txt": "forty-two\n",
	})
	before, _ := os.ReadFile(filepath.Join(dir, "cortex.yaml"))

	// A plain run fails: nothing is granted.
	t0 := time.Now()
	if r := d.CLI(dir, "run", "."); r.Code == 0 {
		t.Fatalf("a plain run succeeded without grants:\n%s", r.Stdout)
	}
	t.Logf("plain run: %s", time.Since(t0).Round(time.Millisecond))
	start := time.Now()
	r := d.CLI(dir, "run", "--learn", ".")
	t.Logf("cortex run --learn (%s):\n%s", time.Since(start).Round(time.Millisecond), r.Stdout)
	want := []string{
		`+      - network.access: ["data.learn.test:` + port + `"]`,
		`-      - bus.publish: []`,
		`+      - bus.publish: [results]`,
		`+      - filesystem.read: ["./data"]`,
	}
	for _, w := range want {
		if !strings.Contains(r.Stdout, w) {
			t.Errorf("--learn output lacks %q:\n%s\n%s", w, r.Stdout, r.Stderr)
		}
	}
	added := 0
	for _, l := range strings.Split(r.Stdout, "\n") {
		if strings.HasPrefix(l, "+") && !strings.HasPrefix(l, "+++") {
			added++
		}
	}
	if added != 3 {
		t.Errorf("--learn proposes %d lines, want exactly 3:\n%s", added, r.Stdout)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "cortex.yaml")); string(after) != string(before) {
		t.Error("--learn without --write changed cortex.yaml")
	}

	r = d.CLI(dir, "run", "--learn", "--write", ".")
	if !strings.Contains(r.Stdout, "Wrote cortex.yaml.") {
		t.Fatalf("--learn --write: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "cortex.yaml"))
	for _, keep := range []string{"# The learner: needs one host, one bus channel and one directory.", "- name: fetcher   # the only agent", "# nothing on the bus yet"} {
		if !strings.Contains(string(after), keep) {
			t.Errorf("--write lost %q:\n%s", keep, after)
		}
	}
	r = d.CLI(dir, "run", ".")
	if r.Code != 0 || !strings.Contains(r.Stdout, "read: forty-two") || !strings.Contains(r.Stdout, "http: hello from the data service") || !strings.Contains(r.Stdout, "published") {
		t.Fatalf("the plain run after --write: exit %d\n%s\n%s\n%s", r.Code, r.Stdout, r.Stderr, after)
	}
	// Learning again finds nothing more.
	r = d.CLI(dir, "run", "--learn", ".")
	if r.Code != 0 || !strings.Contains(r.Stdout, "nothing was refused") {
		t.Errorf("a second --learn: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
}
