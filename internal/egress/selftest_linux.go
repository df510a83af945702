package egress

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// selfTestName is the one name the self-test's policy allows.
const selfTestName = "selftest.cortex.invalid"

// SelfTest serves g to a throwaway network namespace whose policy allows
// one name and, from inside it, asks the resolver for that name (an
// answer is expected) and for another (a refusal), and asks the HTTP
// proxy for a name not allowed (a 403). It tests the path an agent's
// traffic takes through this gateway without leaving the host. Nothing
// it is refused is reported as a denial.
func (g *Gateway) SelfTest(ctx context.Context) (string, error) {
	fd, err := newNetns()
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	pol, err := ParsePolicy([]string{selfTestName})
	if err != nil {
		return "", err
	}
	a, err := g.ServeNetns(ctx, fd, NetnsOptions{Policy: pol, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return "", fmt.Errorf("serve a namespace: %w", err)
	}
	defer a.Close()
	var ev string
	err = inNetns(fd, func() error {
		c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion(selfTestName+".", dns.TypeA)
		r, rtt, err := c.ExchangeContext(ctx, m, ResolverAddr)
		if err != nil {
			return fmt.Errorf("the resolver did not answer: %w", err)
		}
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
			return fmt.Errorf("the resolver answered %s with no address for an allowed name", dns.RcodeToString[r.Rcode])
		}
		m = new(dns.Msg)
		m.SetQuestion("denied.cortex.invalid.", dns.TypeA)
		r, _, err = c.ExchangeContext(ctx, m, ResolverAddr)
		if err != nil {
			return fmt.Errorf("the resolver did not answer a refused name: %w", err)
		}
		if r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
			return fmt.Errorf("the resolver answered a name the policy does not allow")
		}
		d := net.Dialer{Timeout: 2 * time.Second}
		conn, err := d.DialContext(ctx, "tcp", ProxyAddr)
		if err != nil {
			return fmt.Errorf("the HTTP proxy did not accept: %w", err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprintf(conn, "GET http://denied.cortex.invalid/ HTTP/1.1\r\nHost: denied.cortex.invalid\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return fmt.Errorf("the HTTP proxy did not answer: %w", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			return fmt.Errorf("the HTTP proxy answered %s to a name not allowed, want 403", resp.Status)
		}
		ev = fmt.Sprintf("in a probe namespace: DNS answered an allowed name in %s and refused another (%s); the HTTP proxy refused a name not allowed (403)",
			rtt.Round(time.Microsecond), dns.RcodeToString[r.Rcode])
		return nil
	})
	return ev, err
}
