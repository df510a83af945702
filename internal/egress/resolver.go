package egress

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/miekg/dns"
)

// NewResolver returns a Resolver that asks the DNS server at addr
// (host:port) for every name (the daemon config's egress.resolver).
func NewResolver(addr string) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
}

// HostResolvers lists the nameservers of the host's /etc/resolv.conf as
// host:port (what net.DefaultResolver asks).
func HostResolvers() ([]string, error) {
	cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range cc.Servers {
		out = append(out, net.JoinHostPort(s, cc.Port))
	}
	return out, nil
}

// ResolverAnswers asks the DNS server at addr for the root zone's NS
// records over UDP: any answer, whatever its code, means the server is up.
// It tests reachability without depending on any name existing.
func ResolverAnswers(ctx context.Context, addr string) (time.Duration, error) {
	m := new(dns.Msg)
	m.SetQuestion(".", dns.TypeNS)
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	start := time.Now()
	if _, _, err := c.ExchangeContext(ctx, m, addr); err != nil {
		return 0, fmt.Errorf("DNS server %s did not answer: %w", addr, err)
	}
	return time.Since(start), nil
}
