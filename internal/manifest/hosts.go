package manifest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"
)

// HostRule is one network.access entry: a DNS name ("api.example.com"), a
// wildcard ("*.example.org": every name below example.org at any depth, not
// example.org itself) or a single-label service name ("ice-kernel"), each
// optionally limited to one TCP port ("db.example.com:5432").
type HostRule struct {
	Host     string // lowercase, no trailing dot; for a wildcard the part after "*."
	Wildcard bool
	Port     int // 0: any port
}

// String gives the rule back in manifest form.
func (r HostRule) String() string {
	s := r.Host
	if r.Wildcard {
		s = "*." + s
	}
	if r.Port != 0 {
		s += ":" + strconv.Itoa(r.Port)
	}
	return s
}

// Matches reports whether a connection to host:port is allowed by r. host
// is compared case-insensitively, ignoring a trailing dot; port 0 matches
// only rules without a port.
func (r HostRule) Matches(host string, port int) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if r.Port != 0 && port != r.Port {
		return false
	}
	if r.Wildcard {
		return strings.HasSuffix(host, "."+r.Host)
	}
	return host == r.Host
}

const hostFix = "write a DNS name (api.example.com), a wildcard (*.example.org) or a service name (ice-kernel), optionally with :port"

// ParseHostRule parses a network.access entry. It refuses IP literals, URLs,
// paths, empty strings, uppercase and non-ASCII names (with the form to
// write instead), bad ports and wildcards with fewer than two labels after
// "*.". The error text is "what is wrong; how to fix".
func ParseHostRule(s string) (HostRule, error) {
	msg, fix := "", ""
	r, ok := parseHostRule(s, &msg, &fix)
	if !ok {
		if fix == "" {
			fix = hostFix
		}
		return HostRule{}, errors.New(msg + "; " + fix)
	}
	return r, nil
}

func parseHostRule(s string, msg, fix *string) (HostRule, bool) {
	fail := func(m, f string) (HostRule, bool) { *msg, *fix = m, f; return HostRule{}, false }
	if strings.TrimSpace(s) == "" {
		return fail("empty host name", "remove the entry or write a host name")
	}
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return fail(fmt.Sprintf("%q contains spaces or control characters", s), "write one host name per list entry")
	}
	if i := strings.Index(s, "://"); i >= 0 {
		host := ""
		if u, err := url.Parse(s); err == nil {
			host = u.Host
		}
		if host == "" {
			return fail(fmt.Sprintf("%q is a URL, not a host name", s), hostFix)
		}
		return fail(fmt.Sprintf("%q is a URL, not a host name", s), "write the host name only: "+host)
	}
	if isIPLiteral(s) {
		return fail(fmt.Sprintf("%q is an IP address", s), "name the host; literal addresses are refused by the egress gateway")
	}
	if i := strings.IndexByte(s, '/'); i >= 0 {
		if i == 0 || isIPLiteral(s[:i]) {
			return fail(fmt.Sprintf("%q is a path or network, not a host name", s), hostFix)
		}
		return fail(fmt.Sprintf("%q contains a path", s), "write the host name only: "+s[:i])
	}
	host, port := s, 0
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host = s[:i]
		p := s[i+1:]
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
			return fail(fmt.Sprintf("port %q in %q is not a number from 1 to 65535", p, s), "write host:port, e.g. db.example.com:5432")
		}
		port = n
	}
	withPort := func(h string) string {
		if port != 0 {
			return h + ":" + strconv.Itoa(port)
		}
		return h
	}
	if strings.HasSuffix(host, ".") && len(host) > 1 {
		return fail(fmt.Sprintf("%q ends with a dot", s), fmt.Sprintf("write %q", withPort(strings.TrimSuffix(host, "."))))
	}
	for _, r := range host {
		if r > unicode.MaxASCII {
			return fail(fmt.Sprintf("%q is not ASCII", s), "write the name's punycode (xn--) form")
		}
	}
	if lower := strings.ToLower(host); lower != host {
		if _, ok := parseHostRule(withPort(lower), new(string), new(string)); ok {
			return fail(fmt.Sprintf("%q has uppercase letters", s), fmt.Sprintf("write %q", withPort(lower)))
		}
	}
	if host == "*" {
		return fail(fmt.Sprintf("%q would allow every host", s), "list the names the agent needs, or a wildcard like *.example.org")
	}
	rule := HostRule{Host: host, Port: port}
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		rule.Host, rule.Wildcard = rest, true
		if strings.Count(rest, ".") < 1 {
			return fail(fmt.Sprintf("wildcard %q needs at least two labels after *.", s), "write e.g. *.example.org")
		}
	}
	if strings.Contains(rule.Host, "*") {
		return fail(fmt.Sprintf("%q has * in the wrong place", s), "* may only be the whole first label, as in *.example.org")
	}
	if len(rule.Host) > 253 {
		return fail(fmt.Sprintf("%q is longer than 253 characters", s), hostFix)
	}
	labels := strings.Split(rule.Host, ".")
	for _, l := range labels {
		if why := labelProblem(l); why != "" {
			return fail(fmt.Sprintf("%q is not a host name: %s", s, why), hostFix)
		}
	}
	if last := labels[len(labels)-1]; looksNumeric(last) {
		return fail(fmt.Sprintf("%q looks like an IP address", s), "name the host; literal addresses are refused by the egress gateway")
	}
	return rule, true
}

// labelProblem says what is wrong with one DNS label, or "".
func labelProblem(l string) string {
	switch {
	case l == "":
		return "empty label"
	case len(l) > 63:
		return "a label is longer than 63 characters"
	case l[0] == '-' || l[len(l)-1] == '-':
		return fmt.Sprintf("label %q starts or ends with '-'", l)
	}
	for _, r := range l {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Sprintf("%q is not allowed (only a-z, 0-9 and '-')", r)
		}
	}
	return ""
}

// looksNumeric reports whether the last label of a name would be read as
// part of an address by inet_aton-style parsers (all digits, or 0x hex).
func looksNumeric(l string) bool {
	if h, ok := strings.CutPrefix(l, "0x"); ok {
		l = h
		if l == "" {
			return true
		}
		for _, r := range l {
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
				return false
			}
		}
		return true
	}
	for _, r := range l {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func isIPLiteral(s string) bool {
	if strings.HasPrefix(s, "[") {
		return true
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	if net.ParseIP(s) != nil {
		return true
	}
	if h, _, err := net.SplitHostPort(s); err == nil {
		if _, err := netip.ParseAddr(h); err == nil {
			return true
		}
	}
	return strings.Count(s, ":") > 1
}
