package egress

import (
	"errors"
	"io"
	"net"
	"os"
	"time"
)

// streamKind is what the first bytes of a client stream turned out to be.
type streamKind int

const (
	kindOpaque streamKind = iota // neither TLS nor HTTP/1: not inspected
	kindTLS
	kindHTTP
)

// inspection is the result of looking at the first bytes a client sent.
type inspection struct {
	kind  streamKind
	hosts []string // SNI, or Host and request-target hosts
	h2c   bool
	err   error // malformed or incomplete TLS/HTTP head
}

// classify decides what b, the first bytes of a client stream, is. more is
// set when it cannot tell yet; eof says no more bytes will come.
func classify(b []byte, eof bool) (ins inspection, more bool) {
	if len(b) == 0 {
		return inspection{kind: kindOpaque}, !eof
	}
	if b[0] == 0x16 {
		if len(b) < 2 {
			return inspection{kind: kindOpaque}, !eof
		}
		if b[1] != 0x03 {
			return inspection{kind: kindOpaque}, false
		}
		sni, err := parseClientHelloSNI(b)
		if errors.Is(err, errNeedMore) {
			if eof {
				return inspection{kind: kindTLS, err: errors.New("truncated client hello")}, false
			}
			return inspection{kind: kindTLS}, true
		}
		ins := inspection{kind: kindTLS, err: err}
		if sni != "" {
			ins.hosts = []string{sni}
		}
		return ins, false
	}
	yes, undecided := looksLikeHTTP(b)
	if undecided {
		if eof {
			return inspection{kind: kindOpaque}, false
		}
		return inspection{kind: kindOpaque}, true
	}
	if !yes {
		return inspection{kind: kindOpaque}, false
	}
	h, err := parseHTTPHead(b)
	if errors.Is(err, errNeedMore) {
		if eof {
			return inspection{kind: kindHTTP, err: errors.New("truncated http request head")}, false
		}
		return inspection{kind: kindHTTP}, true
	}
	return inspection{kind: kindHTTP, hosts: h.Hosts, h2c: h.H2C, err: err}, false
}

// verdict returns why a stream for name must be refused, or "" to let it
// through. A ClientHello without SNI and an HTTP/1.0 request without Host
// pass: the gateway dials name's own addresses either way, so the checks
// only stop fronting another name through the same server.
func (ins inspection) verdict(name string) Reason {
	switch {
	case ins.err != nil:
		return ReasonMalformed
	case ins.h2c:
		return ReasonProtocol
	}
	for _, h := range ins.hosts {
		if hostMatches(h, name) {
			continue
		}
		if ins.kind == kindTLS {
			return ReasonSNIMismatch
		}
		return ReasonHostMismatch
	}
	return ""
}

// headReader reads the first bytes of a client stream from r (a conn, or a
// bufio.Reader over conn; deadlines go on conn) until classify decides.
type headReader struct {
	conn net.Conn
	r    io.Reader
	// firstWait bounds the wait for the first byte; 0 waits until the conn
	// is closed. A timeout then is not an error: the protocol has the
	// server speak first (SMTP, SSH banners, MySQL).
	firstWait time.Duration
	// complete bounds the time from the first byte to a decision.
	complete time.Duration
}

// read returns the bytes consumed (to forward upstream once allowed) and the
// inspection. idle is set when firstWait passed with nothing sent. err is a
// connection error (reset, closed) after which the stream is dropped.
func (h headReader) read() (buf []byte, ins inspection, idle bool, err error) {
	defer h.conn.SetReadDeadline(time.Time{})
	if h.firstWait > 0 {
		h.conn.SetReadDeadline(time.Now().Add(h.firstWait))
	}
	tmp := make([]byte, 4096)
	n, err := h.r.Read(tmp)
	if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, inspection{}, true, nil
	}
	buf = append(buf, tmp[:n]...)
	h.conn.SetReadDeadline(time.Now().Add(h.complete))
	for {
		eof := errors.Is(err, io.EOF)
		if err != nil && !eof {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return buf, inspection{kind: kindOpaque, err: errors.New("incomplete request head")}, false, nil
			}
			return buf, inspection{}, false, err
		}
		ins, more := classify(buf, eof)
		if !more {
			return buf, ins, false, nil
		}
		if len(buf) > maxClientHello+maxHTTPHead {
			return buf, inspection{kind: ins.kind, err: errors.New("request head too large")}, false, nil
		}
		n, err = h.r.Read(tmp)
		buf = append(buf, tmp[:n]...)
	}
}
