package egress

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	// proxyIdle closes a proxy connection with no request for this long.
	proxyIdle = 60 * time.Second
	// proxyHeadTimeout bounds reading one request head.
	proxyHeadTimeout = 30 * time.Second
)

// handleProxy serves one HTTP proxy client: CONNECT tunnels and
// absolute-form plain HTTP requests, keep-alive included.
func (a *Netns) handleProxy(ctx context.Context, c net.Conn) {
	br := bufio.NewReaderSize(c, 16<<10)
	for first := true; ; first = false {
		wait := proxyIdle
		if first {
			wait = proxyHeadTimeout
		}
		c.SetReadDeadline(time.Now().Add(wait))
		if _, err := br.Peek(1); err != nil {
			return
		}
		c.SetReadDeadline(time.Now().Add(proxyHeadTimeout))
		req, err := http.ReadRequest(br)
		c.SetReadDeadline(time.Time{})
		if err != nil {
			a.deny(Denial{Proto: "proxy"}, ReasonMalformed)
			proxyError(c, http.StatusBadRequest, "malformed request")
			return
		}
		if req.Method == http.MethodConnect {
			a.proxyConnect(ctx, c, br, req)
			return
		}
		if !a.proxyForward(ctx, c, br, req) {
			return
		}
	}
}

// proxyTarget checks the host and port a proxy request names and returns
// its route; it answers the client and records the denial itself when it
// refuses.
func (a *Netns) proxyTarget(c net.Conn, host, port string) (route, Denial, bool) {
	d := Denial{Proto: "proxy", Name: host}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		a.deny(d, ReasonMalformed)
		proxyError(c, http.StatusBadRequest, "bad port "+strconv.Quote(port))
		return route{}, d, false
	}
	d.Port = p
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		name, ok := a.pool.name(ip)
		if !ok {
			d.Name, d.Addr = "", ip.Unmap().String()
			a.deny(d, ReasonLiteralAddress)
			proxyError(c, http.StatusForbidden, string(ReasonLiteralAddress)+" "+d.Addr)
			return route{}, d, false
		}
		host = name
	}
	name, ok := canonicalName(host)
	if !ok {
		a.deny(d, ReasonNameNotAllowed)
		proxyError(c, http.StatusForbidden, string(ReasonNameNotAllowed))
		return route{}, d, false
	}
	d.Name = name
	rt, reason := a.permit(name, p)
	if reason != "" {
		a.deny(d, reason)
		proxyError(c, http.StatusForbidden, fmt.Sprintf("%s: %s:%d", reason, name, p))
		return route{}, d, false
	}
	return rt, d, true
}

// proxyResolve resolves rt before the proxy answers, so refusals and
// failures become 403 and 502 responses.
func (a *Netns) proxyResolve(ctx context.Context, c net.Conn, rt *route, d Denial) bool {
	reason, blocked, err := a.resolve(ctx, rt)
	switch {
	case reason != "":
		d.Addr = blocked.String()
		a.deny(d, reason)
		proxyError(c, http.StatusForbidden, fmt.Sprintf("%s: %s resolves to %s", reason, rt.name, d.Addr))
		return false
	case err != nil:
		a.dialErrors.Add(1)
		proxyError(c, http.StatusBadGateway, err.Error())
		return false
	}
	return true
}

// proxyConnect serves a CONNECT: policy, resolution, 200, then the tunnel
// is relayed like a transparent stream, SNI or Host checked.
func (a *Netns) proxyConnect(ctx context.Context, c net.Conn, br *bufio.Reader, req *http.Request) {
	host, port, err := net.SplitHostPort(req.RequestURI)
	if err != nil {
		a.deny(Denial{Proto: "proxy", Name: req.RequestURI}, ReasonMalformed)
		proxyError(c, http.StatusBadRequest, "CONNECT needs host:port")
		return
	}
	rt, d, ok := a.proxyTarget(c, host, port)
	if !ok || !a.proxyResolve(ctx, c, &rt, d) {
		return
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	a.relay(ctx, c, br, rt, d)
}

// hopHeaders are removed before a request or response crosses the proxy.
var hopHeaders = []string{"Proxy-Connection", "Proxy-Authorization", "Proxy-Authenticate", "Keep-Alive", "Te", "Trailer"}

// proxyForward serves one absolute-form request over a fresh upstream
// connection (never a reused one, so a server closing an idle connection
// cannot turn into a spurious 502). The client's connection stays open for
// its next request when the response allows it. It returns whether it may.
func (a *Netns) proxyForward(ctx context.Context, c net.Conn, br *bufio.Reader, req *http.Request) bool {
	if !req.URL.IsAbs() || !strings.EqualFold(req.URL.Scheme, "http") || req.URL.Host == "" {
		a.deny(Denial{Proto: "proxy", Name: req.Host}, ReasonMalformed)
		proxyError(c, http.StatusBadRequest, "this is an egress proxy: send absolute http:// URIs or CONNECT")
		return false
	}
	port := req.URL.Port()
	if port == "" {
		port = "80"
	}
	rt, d, ok := a.proxyTarget(c, req.URL.Hostname(), port)
	if !ok || !a.proxyResolve(ctx, c, &rt, d) {
		return false
	}
	up, err := a.dial(ctx, rt)
	if err != nil {
		a.dialErrors.Add(1)
		proxyError(c, http.StatusBadGateway, err.Error())
		return false
	}
	if !a.track(up) {
		return false
	}
	defer a.untrack(up)
	a.allowed.Add(1)

	for _, h := range hopHeaders {
		req.Header.Del(h)
	}
	req.Host = req.URL.Host // the URI names the target; a Host header is ignored (RFC 9112 3.2.2)
	req.RequestURI = ""
	clientClose := req.Close
	upgrade := req.Header.Get("Upgrade") != ""
	if !upgrade {
		req.Close = true // one request per upstream connection
	}
	out := &countWriter{w: up}
	werr := make(chan error, 1)
	// The body streams while responses are read, so "Expect: 100-continue"
	// works.
	a.goServe(func() { werr <- req.Write(out) })
	defer func() { a.bytesOut.Add(uint64(out.n)) }()
	upBR := bufio.NewReaderSize(up, 16<<10)
	in := &countWriter{w: c}
	defer func() { a.bytesIn.Add(uint64(in.n)) }()
	for {
		resp, err := http.ReadResponse(upBR, req)
		if err != nil {
			up.Close() // unblocks req.Write
			<-werr
			a.dialErrors.Add(1)
			if in.n == 0 {
				proxyError(c, http.StatusBadGateway, "upstream: "+err.Error())
			}
			return false
		}
		for _, h := range hopHeaders {
			resp.Header.Del(h)
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			// An upgraded stream (websocket) continues as raw bytes.
			err := resp.Write(in)
			if werr := <-werr; err != nil || werr != nil {
				return false
			}
			a.spliceUpgraded(c, br, up, upBR)
			return false
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 {
			if err := resp.Write(in); err != nil {
				up.Close()
				<-werr
				return false
			}
			continue
		}
		// The upstream closes after this response because we asked it to;
		// that says nothing about the client's connection.
		upstreamClose := resp.Close
		resp.Close = clientClose || (upgrade && upstreamClose)
		resp.Header.Del("Connection")
		// Without a length the body ends with the connection (resp.Write
		// then says Connection: close itself).
		mustClose := resp.Close || !resp.ProtoAtLeast(1, 1) ||
			resp.ContentLength < 0 && !slices.Contains(resp.TransferEncoding, "chunked")
		err = resp.Write(in)
		resp.Body.Close()
		if err != nil || mustClose {
			up.Close()
			<-werr
			return false
		}
		break
	}
	return <-werr == nil
}

// spliceUpgraded copies both ways after a 101 response until both ends
// finish.
func (a *Netns) spliceUpgraded(c net.Conn, br *bufio.Reader, up net.Conn, upBR *bufio.Reader) {
	done := make(chan struct{})
	a.goServe(func() {
		defer close(done)
		n, err := pipe(c, upBR, nil)
		a.bytesIn.Add(uint64(n))
		if err != nil {
			c.Close()
			up.Close()
		}
	})
	n, err := pipe(up, br, nil)
	a.bytesOut.Add(uint64(n))
	if err != nil {
		c.Close()
		up.Close()
	}
	<-done
}

type countWriter struct {
	w io.Writer
	n int64
}

func (w *countWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.n += int64(n)
	return n, err
}

// proxyError answers a proxy client with a short plain-text error and
// closes the exchange.
func proxyError(c net.Conn, code int, msg string) {
	body := "cortex egress: " + msg + "\n"
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), len(body), body)
	c.SetWriteDeadline(time.Time{})
}
