package egress

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"github.com/cortexrt/cortex/internal/logkey"
)

// resolve fills rt.addrs for a non-internal route: the Config.Hosts pin, or
// the resolver's answers minus every address the gateway must not dial.
// A non-empty reason is a refusal (all answers blocked); err is a failure
// to resolve.
func (a *Netns) resolve(ctx context.Context, rt *route) (Reason, netip.Addr, error) {
	if rt.dial != nil || len(rt.addrs) > 0 {
		return "", netip.Addr{}, nil
	}
	if pin, ok := a.g.hosts[rt.name]; ok {
		rt.addrs, rt.pinned = []netip.Addr{pin}, true
		return "", netip.Addr{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, a.g.dialTimeout)
	defer cancel()
	addrs, err := a.g.resolver.LookupNetIP(ctx, "ip", rt.name)
	if err != nil {
		return "", netip.Addr{}, fmt.Errorf("resolve %s: %w", rt.name, err)
	}
	var first netip.Addr
	for _, ip := range addrs {
		ip = ip.Unmap()
		if blockedAddr(ip) != "" {
			if !first.IsValid() {
				first = ip
			}
			continue
		}
		rt.addrs = append(rt.addrs, ip)
	}
	if len(rt.addrs) == 0 {
		if first.IsValid() {
			return ReasonBlockedAddress, first, nil
		}
		return "", netip.Addr{}, fmt.Errorf("resolve %s: no addresses", rt.name)
	}
	return "", netip.Addr{}, nil
}

// dial connects to rt from the daemon's own (host) namespace: the internal
// dial function, or each vetted address in turn. Unless the route is pinned
// by Config.Hosts, the address the socket actually connects to is checked
// again just before connect.
func (a *Netns) dial(ctx context.Context, rt route) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, a.g.dialTimeout)
	defer cancel()
	if rt.dial != nil {
		return rt.dial(ctx)
	}
	d := net.Dialer{}
	if !rt.pinned {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("dial %s: %w", address, err)
			}
			if why := blockedAddr(ap.Addr()); why != "" {
				return fmt.Errorf("dial %s: refused, %s address", address, why)
			}
			return nil
		}
	}
	var errs []error
	for _, ip := range rt.addrs {
		c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(ip, uint16(rt.port)).String())
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// relay carries one client stream for an allowed route: it reads the
// client's first bytes (r reads c, possibly through a buffer) and checks
// them against the name, resolves, dials and splices. Refusals reset c.
// The caller owns c (it is tracked) and closes it after relay returns.
func (a *Netns) relay(ctx context.Context, c net.Conn, r io.Reader, rt route, d Denial) {
	hr := headReader{conn: c, r: r, firstWait: a.g.firstWait, complete: a.g.headTimeout}
	head, ins, idle, err := hr.read()
	if err != nil {
		return
	}
	if !idle && len(head) == 0 {
		return // closed (or half-closed) before sending anything: nothing to carry
	}
	serverFirst := idle
	if !serverFirst {
		if reason := ins.verdict(rt.name); reason != "" {
			a.deny(d, reason)
			reset(c)
			return
		}
	}
	if reason, blocked, err := a.resolve(ctx, &rt); reason != "" {
		d.Addr = blocked.String()
		a.deny(d, reason)
		reset(c)
		return
	} else if err != nil {
		a.dialErrors.Add(1)
		a.log.Debug("egress resolve", "name", rt.name, logkey.Err, err)
		reset(c)
		return
	}
	up, err := a.dial(ctx, rt)
	if err != nil {
		a.dialErrors.Add(1)
		a.log.Debug("egress dial", "name", rt.name, "port", rt.port, logkey.Err, err)
		reset(c)
		return
	}
	if !a.track(up) {
		return
	}
	defer a.untrack(up)

	var wg sync.WaitGroup
	wg.Add(1)
	a.goServe(func() {
		defer wg.Done()
		n, err := pipe(c, up, nil)
		a.bytesIn.Add(uint64(n))
		if err != nil {
			c.Close()
			up.Close()
		}
	})
	if serverFirst {
		hr.firstWait = 0
		head, ins, _, err = hr.read()
		if err == nil && len(head) > 0 {
			if reason := ins.verdict(rt.name); reason != "" {
				a.deny(d, reason)
				err = errors.New("refused")
			}
		}
		if err != nil {
			reset(c)
			up.Close()
			wg.Wait()
			return
		}
	}
	a.allowed.Add(1)
	n, err := pipe(up, r, head)
	a.bytesOut.Add(uint64(n))
	if err != nil {
		c.Close()
		up.Close()
	}
	wg.Wait()
}

// pipe writes pending then copies src to dst until EOF, then half-closes
// dst (or closes it when it cannot half-close). It returns the bytes
// written and the first error other than EOF.
func pipe(dst net.Conn, src io.Reader, pending []byte) (int64, error) {
	var n int64
	if len(pending) > 0 {
		m, err := dst.Write(pending)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	if br, ok := src.(*bytes.Reader); ok && br.Len() == 0 {
		src = nil
	}
	if src != nil {
		m, err := io.Copy(dst, src)
		n += m
		if err != nil {
			return n, err
		}
	}
	if hc, ok := dst.(interface{ CloseWrite() error }); ok {
		if err := hc.CloseWrite(); err != nil && !errors.Is(err, net.ErrClosed) {
			return n, err
		}
		return n, nil
	}
	return n, dst.Close()
}

// reset closes c with an RST where it can, so the client fails at once
// instead of seeing a clean end of stream.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
