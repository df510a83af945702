package bustest

import (
	"bufio"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/cortexrt/cortex/internal/kerneltest"
)

// RedisServerPath is the redis-server binary tests use.
const RedisServerPath = "/usr/bin/redis-server"

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Redis is a real redis-server on a loopback port, owned by a test.
type Redis struct {
	t    testing.TB
	Port int
	dir  string
	cmd  *exec.Cmd
}

// StartRedis starts redis-server (no persistence) on a free port; the
// test's cleanup stops it.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	kerneltest.RequireFile(t, RedisServerPath)
	r := &Redis{t: t, Port: FreePort(t), dir: t.TempDir()}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// URL is redis://127.0.0.1:port.
func (r *Redis) URL() string { return "redis://127.0.0.1:" + strconv.Itoa(r.Port) }

// Addr is 127.0.0.1:port.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// Start (re)starts the server on the same port and waits until it answers.
func (r *Redis) Start() {
	r.t.Helper()
	if r.cmd != nil {
		return
	}
	cmd := exec.Command(RedisServerPath, "--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--daemonize", "no", "--protected-mode", "no",
		"--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	r.cmd = cmd
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", r.Addr(), time.Second); err == nil {
			_, _ = c.Write([]byte("PING\r\n"))
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err == nil && line == "+PONG\r\n" {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Fatalf("redis-server on %s did not answer", r.Addr())
}

// Stop kills the server and waits for it to exit.
func (r *Redis) Stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// NATS is an external nats-server (embedded in the test process, with a
// loopback TCP listener), standing in for a NATS cluster.
type NATS struct {
	t    testing.TB
	Port int
	srv  *server.Server
}

// StartNATS starts the server on a free port; the test's cleanup stops it.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	n := &NATS{t: t, Port: FreePort(t)}
	n.Start()
	t.Cleanup(n.Stop)
	return n
}

// URL is nats://127.0.0.1:port.
func (n *NATS) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(n.Port) }

// Start (re)starts the server on the same port.
func (n *NATS) Start() {
	n.t.Helper()
	if n.srv != nil {
		return
	}
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: n.Port, NoSigs: true, NoLog: true})
	if err != nil {
		n.t.Fatalf("nats server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		n.t.Fatalf("nats server on port %d not ready", n.Port)
	}
	n.srv = s
}

// Stop shuts the server down.
func (n *NATS) Stop() {
	if n.srv == nil {
		return
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.srv = nil
}
