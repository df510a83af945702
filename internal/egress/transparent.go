package egress

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/cortexrt/cortex/internal/logkey"
)

// serveAccept accepts on l until it is closed and hands each connection to
// handle on a goroutine owned by the namespace, within MaxConns.
func (a *Netns) serveAccept(ctx context.Context, l net.Listener, handle func(context.Context, net.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || a.isClosed() {
				return
			}
			a.log.Warn("egress accept", "addr", l.Addr().String(), logkey.Err, err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond): // EMFILE and the like
			}
			continue
		}
		if !a.acquire() {
			reset(c)
			continue
		}
		if !a.track(c) {
			a.release()
			return
		}
		a.goServe(func() {
			defer a.release()
			defer a.untrack(c)
			handle(ctx, c)
		})
	}
}

// handleTransparent serves one connection the nftables rules redirected:
// it recovers the original destination, maps it back to a name and relays.
func (a *Netns) handleTransparent(ctx context.Context, c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	dst, err := originalDst(tc)
	if err != nil {
		a.log.Warn("egress original destination", logkey.Err, err)
		reset(c)
		return
	}
	d := Denial{Proto: "tcp", Addr: dst.Addr().Unmap().String(), Port: int(dst.Port())}
	name, ok := a.pool.name(dst.Addr())
	if !ok {
		a.deny(d, ReasonLiteralAddress)
		reset(c)
		return
	}
	// The synthetic address means nothing outside the namespace; from here
	// on a denial names the name (and the real address where one is known).
	d.Name, d.Addr = name, ""
	rt, reason := a.permit(name, int(dst.Port()))
	if reason != "" {
		a.deny(d, reason)
		reset(c)
		return
	}
	a.relay(ctx, c, c, rt, d)
}
