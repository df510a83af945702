package egress

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
)

// maxHTTPHead bounds the request line and headers the gateway buffers.
const maxHTTPHead = 32 << 10

// httpHead is what the gateway learns from the first request of a
// plaintext HTTP/1 connection.
type httpHead struct {
	Method string
	// Hosts are every host the request names: the Host header and, for an
	// absolute-form or authority-form target, the target's host. Ports are
	// stripped. Each must match the connection's name.
	Hosts []string
	// H2C is set for the HTTP/2 prior-knowledge preface, whose :authority
	// the gateway cannot read without decoding HPACK.
	H2C bool
}

var errMalformedHTTP = errors.New("malformed http request")

// looksLikeHTTP reports whether b starts like an HTTP/1 request line: a
// method token of upper-case letters followed by a space, with "HTTP/" later
// on the first line. more is set when b is too short to tell.
func looksLikeHTTP(b []byte) (yes, more bool) {
	i := 0
	for i < len(b) && i <= 20 && (b[i] >= 'A' && b[i] <= 'Z' || b[i] == '-' || b[i] == '_') {
		i++
	}
	switch {
	case i == len(b) && i <= 20:
		return false, true
	case i == 0 || i > 20 || b[i] != ' ':
		return false, false
	}
	j := bytes.IndexByte(b, '\n')
	if j < 0 {
		// A first line over maxHTTPHead is taken for HTTP so that the head
		// parser refuses it; the decision must not flip as bytes arrive.
		if bytes.Contains(b[i:], []byte("HTTP/")) || len(b) >= maxHTTPHead {
			return true, false
		}
		return false, true
	}
	return bytes.Contains(b[i:j], []byte("HTTP/")), false
}

// parseHTTPHead parses the request line and header block at the start of b.
// It returns errNeedMore while the header block is incomplete, and
// errMalformedHTTP for anything a careful server would reject or two servers
// could read differently: obsolete line folding, white space before a colon,
// more than one Host header, a head over maxHTTPHead. It never panics.
func parseHTTPHead(b []byte) (httpHead, error) {
	var h httpHead
	end := -1
	for _, sep := range [][]byte{[]byte("\r\n\r\n"), []byte("\n\n"), []byte("\n\r\n")} {
		if i := bytes.Index(b, sep); i >= 0 && (end < 0 || i+len(sep) < end) {
			end = i + len(sep)
		}
	}
	if end < 0 {
		if len(b) >= maxHTTPHead {
			return h, errMalformedHTTP
		}
		return h, errNeedMore
	}
	if end > maxHTTPHead {
		return h, errMalformedHTTP
	}
	lines := strings.Split(strings.ReplaceAll(string(b[:end]), "\r\n", "\n"), "\n")
	reqLine := lines[0]
	parts := strings.Fields(reqLine)
	if len(parts) != 3 || strings.ContainsAny(reqLine, "\r\x00") {
		return h, errMalformedHTTP
	}
	h.Method = parts[0]
	target, version := parts[1], parts[2]
	if version == "HTTP/2.0" && h.Method == "PRI" {
		h.H2C = true
		return h, nil
	}
	if version != "HTTP/1.1" && version != "HTTP/1.0" {
		return h, errMalformedHTTP
	}
	switch {
	case h.Method == "CONNECT":
		host, ok := hostOfAuthority(target)
		if !ok {
			return h, errMalformedHTTP
		}
		h.Hosts = append(h.Hosts, host)
	case strings.HasPrefix(target, "/") || target == "*":
	default:
		rest, ok := cutScheme(target)
		if !ok {
			return h, errMalformedHTTP
		}
		auth := rest
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			auth = rest[:i]
		}
		if i := strings.LastIndexByte(auth, '@'); i >= 0 {
			auth = auth[i+1:]
		}
		host, ok := hostOfAuthority(auth)
		if !ok {
			return h, errMalformedHTTP
		}
		h.Hosts = append(h.Hosts, host)
	}
	hostHeaders := 0
	for _, l := range lines[1:] {
		if l == "" {
			continue
		}
		if l[0] == ' ' || l[0] == '\t' {
			return h, errMalformedHTTP // obs-fold
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t\r\x00") || strings.ContainsAny(value, "\r\x00") {
			return h, errMalformedHTTP
		}
		if !strings.EqualFold(name, "host") {
			continue
		}
		hostHeaders++
		if hostHeaders > 1 {
			return h, errMalformedHTTP
		}
		host, ok := hostOfAuthority(strings.Trim(value, " \t"))
		if !ok {
			return h, errMalformedHTTP
		}
		h.Hosts = append(h.Hosts, host)
	}
	return h, nil
}

// cutScheme strips "http://" or "https://" (any case) from an absolute URI.
func cutScheme(target string) (string, bool) {
	for _, s := range []string{"http://", "https://"} {
		if len(target) >= len(s) && strings.EqualFold(target[:len(s)], s) {
			return target[len(s):], true
		}
	}
	return "", false
}

// hostOfAuthority returns the host of "host", "host:port", "[v6]" or
// "[v6]:port".
func hostOfAuthority(a string) (string, bool) {
	if a == "" {
		return "", false
	}
	if a[0] == '[' {
		i := strings.IndexByte(a, ']')
		if i < 0 {
			return "", false
		}
		rest := a[i+1:]
		if rest != "" && (rest[0] != ':' || !allDigits(rest[1:])) {
			return "", false
		}
		return a[1:i], true
	}
	host, port, hasPort := strings.Cut(a, ":")
	if host == "" || hasPort && !allDigits(port) || strings.ContainsAny(host, " \t[]") {
		return "", false
	}
	return host, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// hostMatches reports whether a host the client presented (SNI, Host,
// request target) names the connection's canonical name. IP literals never
// match: the connection was made by name.
func hostMatches(host, name string) bool {
	if _, err := netip.ParseAddr(host); err == nil {
		return false
	}
	n, ok := canonicalName(host)
	return ok && n == name
}
