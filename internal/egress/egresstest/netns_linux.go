package egresstest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Netns is a network namespace created for one test, with a worker thread
// inside it that creates sockets and starts processes on request.
type Netns struct {
	fd   int
	reqs chan func()
	done chan struct{}
}

// NewNetns creates a network namespace (only lo, down) that is destroyed
// when the test ends and nothing else holds it.
func NewNetns(t testing.TB) *Netns {
	t.Helper()
	ns, err := Create()
	if err != nil {
		t.Fatalf("create netns: %v", err)
	}
	t.Cleanup(ns.Close)
	return ns
}

// Create is NewNetns without a test; the caller must Close it.
func Create() (*Netns, error) {
	ready := make(chan error, 1)
	ns := &Netns{fd: -1, reqs: make(chan func()), done: make(chan struct{})}
	go func() {
		// The worker never unlocks: when it returns, its thread (which is in
		// the test namespace) is destroyed instead of being reused.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ready <- fmt.Errorf("unshare: %w", err)
			return
		}
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ready <- err
			return
		}
		ns.fd = fd
		ready <- nil
		for {
			select {
			case f := <-ns.reqs:
				f()
			case <-ns.done:
				return
			}
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return ns, nil
}

// FD is the namespace's file descriptor (owned by ns).
func (ns *Netns) FD() int { return ns.fd }

// Close stops the worker and closes the fd. Processes started in the
// namespace and sockets opened in it keep it alive until they end.
func (ns *Netns) Close() {
	select {
	case <-ns.done:
		return
	default:
	}
	close(ns.done)
	unix.Close(ns.fd)
}

// Do runs fn on the worker thread, inside the namespace.
func (ns *Netns) Do(fn func()) error {
	fin := make(chan struct{})
	select {
	case ns.reqs <- func() { fn(); close(fin) }:
	case <-ns.done:
		return errors.New("netns closed")
	}
	<-fin
	return nil
}

// DialContext opens a connection from inside the namespace. addr must be a
// literal address (resolve with Resolver first): the socket is created on
// the worker thread, the connect completes wherever.
func (ns *Netns) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var (
		c   net.Conn
		err error
	)
	var d net.Dialer
	if derr := ns.Do(func() { c, err = d.DialContext(ctx, network, addr) }); derr != nil {
		return nil, derr
	}
	return c, err
}

// ListenPacket opens a packet socket inside the namespace.
func (ns *Netns) ListenPacket(network, addr string) (net.PacketConn, error) {
	var (
		c   net.PacketConn
		err error
	)
	if derr := ns.Do(func() { c, err = net.ListenPacket(network, addr) }); derr != nil {
		return nil, derr
	}
	return c, err
}

// Resolver asks the DNS server at server (e.g. "127.0.0.1:53") inside the
// namespace.
func (ns *Netns) Resolver(server string) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return ns.DialContext(ctx, network, server)
		},
	}
}

// Dialer dials host:port from inside the namespace, resolving names with
// the resolver at dnsServer inside it (IPv4 only, as an agent would get).
func (ns *Netns) Dialer(dnsServer string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	r := ns.Resolver(dnsServer)
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if ip := net.ParseIP(host); ip == nil {
			ips, err := r.LookupIP(ctx, "ip4", host)
			if err != nil {
				return nil, err
			}
			host = ips[0].String()
		}
		return ns.DialContext(ctx, "tcp4", net.JoinHostPort(host, port))
	}
}

// HTTPClient is an http.Client whose connections start inside the
// namespace. proxy, when non-nil, is used for every request; roots verifies
// TLS servers.
func (ns *Netns) HTTPClient(dnsServer string, proxy *url.URL, roots *x509.CertPool) *http.Client {
	tr := &http.Transport{
		DialContext:       ns.Dialer(dnsServer),
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		DisableKeepAlives: true,
	}
	if proxy != nil {
		tr.Proxy = http.ProxyURL(proxy)
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// helperEnv marks a re-exec of the test binary as the process helper; its
// value is the file to bind over /etc/resolv.conf.
const helperEnv = "CORTEX_EGRESSTEST_RESOLV"

// MaybeHelper must be called first thing in TestMain. In the re-exec that
// Command starts it bind-mounts the namespace's resolv.conf over
// /etc/resolv.conf (in the private mount namespace the child was cloned
// into) and execs the target program; it never returns there. Otherwise it
// returns at once.
func MaybeHelper() {
	resolv := os.Getenv(helperEnv)
	if resolv == "" {
		return
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "egresstest helper:", err)
		os.Exit(127)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		fail(fmt.Errorf("make / private: %w", err))
	}
	if err := unix.Mount(resolv, "/etc/resolv.conf", "", unix.MS_BIND, ""); err != nil {
		fail(fmt.Errorf("bind resolv.conf: %w", err))
	}
	if len(os.Args) < 2 {
		fail(errors.New("no program"))
	}
	path, err := exec.LookPath(os.Args[1])
	if err != nil {
		fail(err)
	}
	env := make([]string, 0, len(os.Environ()))
	for _, e := range os.Environ() {
		if len(e) > len(helperEnv) && e[:len(helperEnv)+1] == helperEnv+"=" {
			continue
		}
		env = append(env, e)
	}
	fail(syscall.Exec(path, os.Args[1:], env))
}

// Command prepares name args to run inside the namespace with exactly the
// environment env, in a private mount namespace where /etc/resolv.conf
// reads resolvConf (the process sees what an agent would). The test binary
// must call MaybeHelper in TestMain. Start it with ns.Start or ns.Run.
func (ns *Netns) Command(t testing.TB, resolvConf []byte, env []string, name string, args ...string) *exec.Cmd {
	t.Helper()
	file := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(file, resolvConf, 0o644); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, append([]string{name}, args...)...)
	cmd.Env = append(append([]string{}, env...), helperEnv+"="+file)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// Start starts cmd from the worker thread, so the process is born inside
// the namespace.
func (ns *Netns) Start(cmd *exec.Cmd) error {
	var err error
	if derr := ns.Do(func() { err = cmd.Start() }); derr != nil {
		return derr
	}
	return err
}

// Run starts cmd inside the namespace and waits for it, returning its
// combined output.
func (ns *Netns) Run(cmd *exec.Cmd) ([]byte, error) {
	var out safeBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := ns.Start(cmd); err != nil {
		return nil, err
	}
	err := cmd.Wait()
	return out.Bytes(), err
}
