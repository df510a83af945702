package egress

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
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
func (a *Attachment) handleProxy(ctx context.Context, c net.Conn) {
	br := bufio.NewReaderSize(c, 16<<10)
	up := &proxyUpstream{}
	defer up.close(a)
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
			up.close(a)
			a.proxyConnect(ctx, c, br, req)
			return
		}
		if !a.proxyForward(ctx, c, br, req, up) {
			return
		}
	}
}

// proxyTarget checks the host and port a proxy request names and returns
// its route; it answers the client and records the denial itself when it
// refuses.
func (a *Attachment) proxyTarget(c net.Conn, host, port string) (route, Denial, bool) {
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
func (a *Attachment) proxyResolve(ctx context.Context, c net.Conn, rt *route, d Denial) bool {
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
func (a *Attachment) proxyConnect(ctx context.Context, c net.Conn, br *bufio.Reader, req *http.Request) {
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

// proxyUpstream is the origin connection a proxy client's plain HTTP
// requests reuse while they go to the same host and port.
type proxyUpstream struct {
	key  string
	conn net.Conn
	br   *bufio.Reader
}

func (u *proxyUpstream) close(a *Attachment) {
	if u.conn != nil {
		a.untrack(u.conn)
		u.conn, u.br, u.key = nil, nil, ""
	}
}

// hopHeaders are removed before a request or response crosses the proxy.
var hopHeaders = []string{"Proxy-Connection", "Proxy-Authorization", "Proxy-Authenticate", "Keep-Alive", "Te", "Trailer"}

// proxyForward serves one absolute-form request. It returns whether the
// client connection can carry another request.
func (a *Attachment) proxyForward(ctx context.Context, c net.Conn, br *bufio.Reader, req *http.Request, up *proxyUpstream) bool {
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
	if !ok {
		return false
	}
	key := rt.name + ":" + port
	if up.key != key {
		up.close(a)
		if !a.proxyResolve(ctx, c, &rt, d) {
			return false
		}
		conn, err := a.dial(ctx, rt)
		if err != nil {
			a.dialErrors.Add(1)
			proxyError(c, http.StatusBadGateway, err.Error())
			return false
		}
		if !a.track(conn) {
			return false
		}
		up.key, up.conn, up.br = key, conn, bufio.NewReaderSize(conn, 16<<10)
	}
	a.allowed.Add(1)
	for _, h := range hopHeaders {
		req.Header.Del(h)
	}
	req.Host = req.URL.Host // the URI names the target; a Host header is ignored (RFC 9112 3.2.2)
	req.RequestURI = ""

	out := &countWriter{w: up.conn}
	werr := make(chan error, 1)
	a.goServe(func() { werr <- req.Write(out) })
	closeAfter := req.Close
	for {
		resp, err := http.ReadResponse(up.br, req)
		if err != nil {
			up.close(a) // unblocks req.Write
			<-werr
			a.dialErrors.Add(1)
			proxyError(c, http.StatusBadGateway, "upstream: "+err.Error())
			return false
		}
		for _, h := range hopHeaders {
			resp.Header.Del(h)
		}
		in := &countWriter{w: c}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			// An upgraded stream (websocket) continues as raw bytes.
			err := resp.Write(in)
			a.bytesIn.Add(uint64(in.n))
			if werr := <-werr; err != nil || werr != nil {
				return false
			}
			a.bytesOut.Add(uint64(out.n))
			a.spliceUpgraded(c, br, up)
			return false
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 {
			err := resp.Write(in)
			a.bytesIn.Add(uint64(in.n))
			if err != nil {
				up.close(a)
				<-werr
				return false
			}
			continue
		}
		err = resp.Write(in)
		a.bytesIn.Add(uint64(in.n))
		closeAfter = closeAfter || resp.Close
		if err != nil {
			up.close(a)
			<-werr
			return false
		}
		break
	}
	if err := <-werr; err != nil {
		up.close(a)
		return false
	}
	a.bytesOut.Add(uint64(out.n))
	if closeAfter {
		up.close(a)
		return false
	}
	return true
}

// spliceUpgraded copies both ways after a 101 response until both ends
// finish.
func (a *Attachment) spliceUpgraded(c net.Conn, br *bufio.Reader, up *proxyUpstream) {
	conn, ubr := up.conn, up.br
	done := make(chan struct{})
	a.goServe(func() {
		defer close(done)
		n, err := pipe(c, ubr, nil)
		a.bytesIn.Add(uint64(n))
		if err != nil {
			c.Close()
			conn.Close()
		}
	})
	n, err := pipe(conn, br, nil)
	a.bytesOut.Add(uint64(n))
	if err != nil {
		c.Close()
		conn.Close()
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
