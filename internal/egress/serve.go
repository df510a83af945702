package egress

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// ServeProxy serves the HTTP proxy alone on l, outside any network
// namespace: the per-agent egress gateway pod of a swarm on Kubernetes,
// where the cluster's NetworkPolicy (not nftables) makes the gateway the
// only way out and the agent's HTTP_PROXY/HTTPS_PROXY point at it. The
// policy, the SNI and Host checks, the address checks (no loopback,
// private, link-local or metadata addresses unless Config.Hosts pins the
// name) and the denials are exactly ServeNetns's; there is no resolver and no
// transparent path. It returns at once; Close on the returned Netns (or the
// gateway) stops serving and closes l.
func (g *Gateway) ServeProxy(ctx context.Context, l net.Listener, opts NetnsOptions) (*Netns, error) {
	a, err := openNetns(g, opts)
	if err != nil {
		return nil, errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("egress proxy: %w", err))
	}
	a.closers = []io.Closer{l}
	serveCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	g.mu.Lock()
	g.namespaces[a] = struct{}{}
	g.mu.Unlock()
	a.goServe(func() { a.serveAccept(serveCtx, l, a.handleProxy) })
	return a, nil
}
