package egress

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/egress/egresstest"
	"github.com/cortexrt/cortex/internal/kerneltest"
	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	egresstest.MaybeHelper()
	os.Exit(m.Run())
}

const (
	// waitLong bounds every wait for something that must happen; a refusal
	// that takes this long is a hang, not a refusal.
	waitLong = 15 * time.Second
)

// pinned are the names the daemon config (Config.Hosts) points at the
// host's loopback, where the test servers listen.
var pinned = map[string]string{
	"api.allowed.test":    "127.0.0.1",
	"other.allowed.test":  "127.0.0.1",
	"db.allowed.test":     "127.0.0.1",
	"banner.allowed.test": "127.0.0.1",
	"ice-kernel":          "127.0.0.1",
	"echo.allowed.test":   "127.0.0.1",
}

// upstreamRecords are what the fake upstream resolver says: names that try
// to rebind into ranges the gateway must never dial.
var upstreamRecords = map[string]string{
	"rebind.allowed.test": "10.0.0.5",
	"loop.allowed.test":   "127.0.0.1",
	"meta.allowed.test":   "169.254.169.254",
	"v6loop.allowed.test": "::1",
	"api.allowed.test":    "93.184.216.34", // pinned: must never be asked
}

// testEnv is one agent namespace served by a gateway, host-side test
// servers and a fake upstream resolver.
type testEnv struct {
	t        testing.TB
	ns       *egresstest.Netns
	g        *Gateway
	a        *Netns
	denials  *denialLog
	upstream *egresstest.DNSServer
	ca       *egresstest.CA
	caFile   string

	httpPort, httpsPort, bannerPort string
	hostHits                        atomic.Int64 // requests the host servers saw
	bannerGot                       chan string  // what the banner server read
}

type envOption func(*envConfig)

type envConfig struct {
	maxConns int
	internal []string
	register map[string]DialFunc
	noServe  bool
}

func withInternal(names ...string) envOption {
	return func(c *envConfig) { c.internal = names }
}

func withRegistered(name string, dial DialFunc) envOption {
	return func(c *envConfig) {
		if c.register == nil {
			c.register = map[string]DialFunc{}
		}
		c.register[name] = dial
	}
}

func requireKernel(t testing.TB) {
	t.Helper()
	kerneltest.RequireRoot(t)
	kerneltest.Require(t, "egress gateway (netns, nftables nat/redir/reject/log, nflog)", Probe)
}

// newEnv serves a gateway with the given network.access to a fresh
// namespace. {http}, {https} and {banner} in entries are replaced by the
// host test servers' ports.
func newEnv(t testing.TB, entries []string, opts ...envOption) *testEnv {
	t.Helper()
	requireKernel(t)
	var cfg envConfig
	for _, o := range opts {
		o(&cfg)
	}
	e := &testEnv{t: t, denials: &denialLog{}, bannerGot: make(chan string, 16)}
	e.ca = egresstest.NewCA(t)
	e.caFile = e.ca.File(t)

	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hostHits.Add(1)
		fmt.Fprintf(w, "hello %s", r.Host)
	}))
	t.Cleanup(hs.Close)
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hostHits.Add(1)
		fmt.Fprintf(w, "secure %s sni=%s", r.Host, r.TLS.ServerName)
	}))
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{e.ca.Issue(t, "api.allowed.test", "other.allowed.test", "ice-kernel")}}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	e.httpPort = port(hs.Listener.Addr())
	e.httpsPort = port(ts.Listener.Addr())
	e.bannerPort = e.bannerServer()

	e.upstream = egresstest.NewDNSServer(t, upstreamRecords)
	g, err := New(Config{Hosts: pinned, Resolver: e.upstream.Resolver(), DialTimeout: 5 * time.Second, MaxConns: cfg.maxConns}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for n, d := range cfg.register {
		if err := g.RegisterInternal(n, d); err != nil {
			t.Fatal(err)
		}
	}
	e.g = g
	e.ns = egresstest.NewNetns(t)
	if cfg.noServe {
		return e
	}
	for i, s := range entries {
		entries[i] = strings.NewReplacer("{http}", e.httpPort, "{https}", e.httpsPort, "{banner}", e.bannerPort).Replace(s)
	}
	p, err := ParsePolicy(entries)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	a, err := g.ServeNetns(ctx, e.ns.FD(), NetnsOptions{Policy: p, Internal: cfg.internal, OnDeny: e.denials.add})
	if err != nil {
		t.Fatalf("ServeNetns: %v", err)
	}
	e.a = a
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if left := e.denials.take(); len(left) > 0 {
			t.Errorf("denials nobody expected: %+v", left)
		}
	})
	return e
}

func port(a net.Addr) string {
	_, p, _ := net.SplitHostPort(a.String())
	return p
}

// bannerServer speaks first ("220 banner"), then reports the first line
// the client sends and echoes it back.
func (e *testEnv) bannerServer() string {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.WriteString(c, "220 banner\r\n")
				c.SetReadDeadline(time.Now().Add(waitLong))
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil && line == "" {
					e.bannerGot <- "<" + errKind(err) + ">"
					return
				}
				e.bannerGot <- line
				io.WriteString(c, "echo "+line)
			}()
		}
	}()
	return port(l.Addr())
}

// lookup asks the gateway's resolver inside the namespace.
func (e *testEnv) lookup(name string) (netip.Addr, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	ips, err := e.ns.Resolver(ResolverAddr).LookupNetIP(ctx, "ip4", name)
	if err != nil {
		return netip.Addr{}, err
	}
	return ips[0], nil
}

func (e *testEnv) mustLookup(name string) netip.Addr {
	e.t.Helper()
	ip, err := e.lookup(name)
	if err != nil {
		e.t.Fatalf("lookup %s: %v", name, err)
	}
	return ip
}

// query sends one DNS query from inside the namespace over network.
func (e *testEnv) query(network, name string, qtype uint16) *dns.Msg {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c, err := e.ns.DialContext(ctx, network, ResolverAddr)
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitLong))
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	dc := &dns.Conn{Conn: c}
	if err := dc.WriteMsg(m); err != nil {
		e.t.Fatal(err)
	}
	resp, err := dc.ReadMsg()
	if err != nil {
		e.t.Fatalf("query %s over %s: %v", name, network, err)
	}
	return resp
}

// dial connects from inside the namespace.
func (e *testEnv) dial(addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	network := "tcp4"
	if ap, err := netip.ParseAddrPort(addr); err == nil && ap.Addr().Is6() {
		network = "tcp6"
	}
	c, err := e.ns.DialContext(ctx, network, addr)
	if err == nil {
		c.SetDeadline(time.Now().Add(waitLong))
	}
	return c, err
}

// dialMapped connects an AF_INET6 socket to the IPv4-mapped form of ip
// (which Go's dialer would turn into an AF_INET socket), then reads one
// byte. It returns the first error.
func (e *testEnv) dialMapped(ip netip.Addr, port int) (int, error) {
	var err error
	e.ns.Do(func() {
		var fd int
		fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return
		}
		defer unix.Close(fd)
		tv := unix.NsecToTimeval(waitLong.Nanoseconds())
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		if err = unix.Connect(fd, &unix.SockaddrInet6{Port: port, Addr: netip.AddrFrom16(ip.As16()).As16()}); err != nil {
			return
		}
		var b [1]byte
		var n int
		n, err = unix.Read(fd, b[:])
		if err == nil && n == 0 {
			err = io.EOF
		}
	})
	return 0, err
}

// expectRefused connects to addr from the namespace and requires the
// attempt to fail at once: connection refused, or accepted and reset
// before any byte, never a timeout.
func (e *testEnv) expectRefused(addr string, send []byte) {
	e.t.Helper()
	c, err := e.dial(addr)
	if err == nil {
		defer c.Close()
		if len(send) > 0 {
			// A reset that arrives before the write is reported by the
			// write; the read after it then sees only EOF.
			_, err = c.Write(send)
		}
		if err == nil {
			var b [1]byte
			_, err = c.Read(b[:])
		}
	}
	if !isRefusal(err) {
		e.t.Errorf("%s: err = %v, want connection refused or reset", addr, err)
	}
}

func isRefusal(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func errKind(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, io.EOF):
		return "eof"
	case isRefusal(err):
		return "refused"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	}
	return err.Error()
}

// expectDenials waits (the NFLOG path is asynchronous) until the gateway has
// reported len(want) denials and compares them, in any order, ignoring Time.
func (e *testEnv) expectDenials(want ...Denial) {
	e.t.Helper()
	var got []Denial
	deadline := time.Now().Add(waitLong)
	for {
		got = append(got, e.denials.take()...)
		if len(got) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	sortDenials(got)
	sortDenials(want)
	if diff := cmp.Diff(want, got, ignoreTime); diff != "" {
		e.t.Errorf("denials (-want +got):\n%s", diff)
	}
	for _, d := range got {
		if d.Time.IsZero() {
			e.t.Errorf("denial without time: %+v", d)
		}
	}
}

func sortDenials(ds []Denial) {
	key := func(d Denial) string { return fmt.Sprint(d.Proto, d.Name, d.Addr, d.Port, d.Reason) }
	for i := range ds {
		for j := i + 1; j < len(ds); j++ {
			if key(ds[j]) < key(ds[i]) {
				ds[i], ds[j] = ds[j], ds[i]
			}
		}
	}
}

// run starts program inside the namespace as an agent would run: the
// gateway's resolv.conf, the test CA trusted, and extra env.
func (e *testEnv) run(program string, extraEnv []string, args ...string) (string, error) {
	e.t.Helper()
	env := append([]string{
		"PATH=/usr/bin:/bin",
		"HOME=" + e.t.TempDir(),
		"SSL_CERT_FILE=" + e.caFile,
		"NODE_EXTRA_CA_CERTS=" + e.caFile,
	}, extraEnv...)
	cmd := e.ns.Command(e.t, e.a.ResolvConf(), env, program, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			if cmd.Process != nil {
				cmd.Process.Kill()
			}
		case <-done:
		}
	}()
	out, err := e.ns.Run(cmd)
	close(done)
	return strings.TrimSpace(string(out)), err
}

// egressGoroutines lists the goroutines running code of this package (not
// its tests, not egresstest).
func egressGoroutines() []string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if egressFrame.MatchString(g) {
			out = append(out, g)
		}
	}
	return out
}

var egressFrame = regexp.MustCompile(`/internal/egress/[a-z0-9]+(_linux|_other)?\.go:\d+`)

// waitNoEgressGoroutines fails t unless the package's goroutines are gone
// within waitLong.
func waitNoEgressGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		left := egressGoroutines()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d egress goroutines still running:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
