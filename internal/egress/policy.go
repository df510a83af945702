package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// InternalSuffix is the domain of the daemon's built-in names. Entries under
// it are refused by ParsePolicy: only the daemon enables internal names.
const InternalSuffix = "cortex.internal"

// Rule is one parsed network.access entry.
type Rule struct {
	// Name is the lowercased name without a trailing dot; for a wildcard it
	// is the suffix ("example.org" for "*.example.org").
	Name string
	// Wildcard makes the rule match every name strictly below Name.
	Wildcard bool
	// Port narrows the rule to one TCP port; 0 allows every port.
	Port int
}

// String gives the rule back in network.access syntax.
func (r Rule) String() string {
	s := r.Name
	if r.Wildcard {
		s = "*." + s
	}
	if r.Port != 0 {
		s += ":" + strconv.Itoa(r.Port)
	}
	return s
}

// matchesName reports whether the rule covers the normalized name.
func (r Rule) matchesName(name string) bool {
	if r.Wildcard {
		return len(name) > len(r.Name)+1 && strings.HasSuffix(name, r.Name) && name[len(name)-len(r.Name)-1] == '.'
	}
	return name == r.Name
}

// Policy is an agent's egress allowlist. The zero Policy allows nothing.
// Build it with ParsePolicy; Rules are sorted and free of duplicates.
type Policy struct {
	Rules []Rule
}

// ParsePolicy parses network.access entries: "api.example.com",
// "*.example.org", "ice-kernel", "db.example.com:5432". It refuses URLs,
// paths, IP literals, "*" and wildcards over a single label ("*.com"),
// localhost and names under cortex.internal, and returns every problem
// joined, each an errdefs.InvalidArgument naming the entry and the fix.
func ParsePolicy(entries []string) (Policy, error) {
	var (
		p    Policy
		errs []error
	)
	for i, e := range entries {
		r, err := parseRule(e)
		if err != nil {
			errs = append(errs, errdefs.New(errdefs.InvalidArgument, "network.access[%d]: %q: %v", i, e, err))
			continue
		}
		p.Rules = append(p.Rules, r)
	}
	if len(errs) > 0 {
		return Policy{}, errors.Join(errs...)
	}
	slices.SortFunc(p.Rules, func(a, b Rule) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		if a.Wildcard != b.Wildcard {
			if a.Wildcard {
				return 1
			}
			return -1
		}
		return a.Port - b.Port
	})
	p.Rules = slices.Compact(p.Rules)
	return p, nil
}

func parseRule(entry string) (Rule, error) {
	s := strings.TrimSpace(entry)
	switch {
	case s == "":
		return Rule{}, errors.New("empty entry; write a host name such as api.example.com")
	case strings.Contains(s, "://"):
		return Rule{}, errors.New("write a host name, not a URL; e.g. api.example.com or api.example.com:443")
	case strings.ContainsAny(s, "/?#@"):
		return Rule{}, errors.New("write a host name only, without path, query or user; e.g. api.example.com")
	case strings.ContainsAny(s, " \t\r\n"):
		return Rule{}, errors.New("contains white space; write one host name per entry")
	}
	if _, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return Rule{}, errors.New("literal IP addresses are never reachable; egress is granted by name")
	}
	if _, err := netip.ParseAddrPort(s); err == nil {
		return Rule{}, errors.New("literal IP addresses are never reachable; egress is granted by name")
	}
	var r Rule
	host := s
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host = s[:i]
		port, err := parsePort(s[i+1:])
		if err != nil {
			return Rule{}, err
		}
		r.Port = port
	}
	if host == "*" {
		return Rule{}, errors.New(`"*" would allow every name; list the names, or a wildcard such as *.example.org`)
	}
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		r.Wildcard = true
		host = rest
	}
	name, err := normalizeName(host)
	if err != nil {
		return Rule{}, err
	}
	if r.Wildcard && !strings.Contains(name, ".") {
		return Rule{}, fmt.Errorf("wildcard over a top-level domain is too broad; use e.g. *.example.%s", name)
	}
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return Rule{}, errors.New("localhost is the agent's own loopback and never goes through egress")
	}
	if name == InternalSuffix || strings.HasSuffix(name, "."+InternalSuffix) {
		return Rule{}, errors.New("names under " + InternalSuffix + " are enabled by the daemon, not by network.access")
	}
	r.Name = name
	return r, nil
}

func parsePort(s string) (int, error) {
	if s == "" || len(s) > 5 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("port %q is not a number; write name:port, e.g. db.example.com:5432", s)
	}
	n, _ := strconv.Atoi(s)
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d is out of range 1-65535", n)
	}
	return n, nil
}

// normalizeName lowercases name, drops one trailing dot and checks it is a
// host name: labels of letters, digits, '-' and '_', 1-63 bytes, at most 253
// in all, not starting or ending with '-', and a last label that does not
// read as a number (inet_aton would take "10.1" or "0x7f" for an address).
func normalizeName(name string) (string, error) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if name == "" {
		return "", errors.New("empty host name")
	}
	if len(name) > 253 {
		return "", errors.New("host name longer than 253 bytes")
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" {
			return "", errors.New("empty label in host name")
		}
		if len(l) > 63 {
			return "", fmt.Errorf("label %q longer than 63 bytes", l)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("%q is not allowed in a host name", string(rune(c)))
			}
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("label %q starts or ends with '-'", l)
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" || (strings.HasPrefix(last, "0x") && strings.Trim(last[2:], "0123456789abcdef") == "") {
		return "", errors.New("looks like an IP address; egress is granted by name")
	}
	return name, nil
}

// canonicalName normalizes a name seen on the wire (DNS question, SNI, Host,
// CONNECT). ok is false when it is not a host name a rule could match.
func canonicalName(name string) (string, bool) {
	n, err := normalizeName(name)
	return n, err == nil
}

// Empty reports whether the policy allows nothing.
func (p Policy) Empty() bool { return len(p.Rules) == 0 }

// AllowsName reports whether some rule covers name on any port. The DNS
// resolver answers exactly these names.
func (p Policy) AllowsName(name string) bool {
	n, ok := canonicalName(name)
	if !ok {
		return false
	}
	for _, r := range p.Rules {
		if r.matchesName(n) {
			return true
		}
	}
	return false
}

// Allows reports whether a TCP connection to name:port is granted.
func (p Policy) Allows(name string, port int) bool {
	if port < 1 || port > 65535 {
		return false
	}
	n, ok := canonicalName(name)
	if !ok {
		return false
	}
	for _, r := range p.Rules {
		if r.matchesName(n) && (r.Port == 0 || r.Port == port) {
			return true
		}
	}
	return false
}

// String lists the rules in network.access syntax.
func (p Policy) String() string {
	s := make([]string, len(p.Rules))
	for i, r := range p.Rules {
		s[i] = r.String()
	}
	return "[" + strings.Join(s, " ") + "]"
}
