package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strconv"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ServeNetns configures the network namespace netnsFD refers to and starts the
// agent's listeners in it: loopback up, a "local default" route (v4 and,
// when the kernel has it, v6) so every connect reaches the OUTPUT hook, the
// nftables table "cortex-egress" (replaced if present, so serving it again after
// a daemon restart works), the resolver, the proxy, the transparent
// listeners and the NFLOG reader. It returns when they are all serving.
// ctx bounds the setup only; the namespace lives until Close. An empty
// policy with no internal names still gets all of this: nothing resolves
// and every attempt is refused and reported. The caller keeps ownership of
// netnsFD.
func (g *Gateway) ServeNetns(ctx context.Context, netnsFD int, opts NetnsOptions) (*Netns, error) {
	a, err := openNetns(g, opts)
	if err != nil {
		return nil, errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("serve egress: %w", err))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ls, err := setupNetns(netnsFD)
	if err != nil {
		return nil, err
	}
	a.closers = ls.closers()
	a.transparentPort = ls.transparent[0].Addr().(*net.TCPAddr).Port
	if err := ctx.Err(); err != nil {
		closeAll(a.closers)
		return nil, err
	}

	serveCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	g.mu.Lock()
	g.namespaces[a] = struct{}{}
	g.mu.Unlock()

	a.goServe(func() { a.serveDNSUDP(ls.dnsUDP) })
	a.goServe(func() { a.serveAccept(serveCtx, ls.dnsTCP, a.handleDNSTCP) })
	a.goServe(func() { a.serveAccept(serveCtx, ls.proxy, a.handleProxy) })
	for _, l := range ls.transparent {
		a.goServe(func() { a.serveAccept(serveCtx, l, a.handleTransparent) })
	}
	a.goServe(func() { a.serveNFLog(ls.nflog) })
	return a, nil
}

// listeners are the sockets one namespace serves, all bound inside the
// agent's namespace.
type listeners struct {
	dnsUDP      *net.UDPConn
	dnsTCP      *net.TCPListener
	proxy       *net.TCPListener
	transparent []*net.TCPListener // 127.0.0.1:P and, with IPv6, [::1]:P
	nflog       *nflogConn
}

func (l *listeners) closers() []io.Closer {
	var cs []io.Closer
	for _, c := range []io.Closer{l.dnsUDP, l.dnsTCP, l.proxy, l.nflog} {
		if c != nil && !isNilCloser(c) {
			cs = append(cs, c)
		}
	}
	for _, t := range l.transparent {
		cs = append(cs, t)
	}
	return cs
}

func isNilCloser(c io.Closer) bool {
	switch v := c.(type) {
	case *net.UDPConn:
		return v == nil
	case *net.TCPListener:
		return v == nil
	case *nflogConn:
		return v == nil
	}
	return false
}

func closeAll(cs []io.Closer) {
	for _, c := range cs {
		c.Close()
	}
}

// setupNetns does the namespace side of ServeNetns.
func setupNetns(fd int) (*listeners, error) {
	ls := &listeners{}
	var v6 bool
	err := inNetns(fd, func() error {
		var err error
		if v6, err = setupRoutes(); err != nil {
			return err
		}
		return ls.open(v6)
	})
	if err != nil {
		closeAll(ls.closers())
		return nil, err
	}
	if ls.nflog, err = openNFLog(fd, nflogGroup); err != nil {
		closeAll(ls.closers())
		return nil, errdefs.WithHint(errdefs.Wrap(errdefs.Unsupported, fmt.Errorf("egress nflog: %w", err)),
			"the kernel needs CONFIG_NETFILTER_NETLINK_LOG and CONFIG_NFT_LOG")
	}
	port := ls.transparent[0].Addr().(*net.TCPAddr).Port
	if err := programRules(fd, uint16(port), v6, nflogGroup); err != nil {
		closeAll(ls.closers())
		return nil, errdefs.WithHint(errdefs.Wrap(errdefs.Unsupported, fmt.Errorf("egress nftables: %w", err)),
			"the kernel needs nftables with nat, redir, reject and log (CONFIG_NFT_NAT, CONFIG_NFT_REDIR, CONFIG_NFT_REJECT_INET, CONFIG_NFT_LOG)")
	}
	return ls, nil
}

// inNetns runs fn on a fresh OS thread that entered the network namespace
// fd. The thread is never handed back to the Go scheduler: the goroutine
// exits still locked, so the runtime destroys the thread and no other
// goroutine ever runs in the agent's namespace. Sockets fn opens stay in
// that namespace wherever they are used later.
func inNetns(fd int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- errdefs.Wrap(errdefs.FailedPrecondition, fmt.Errorf("enter netns fd %d: %w", fd, err))
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// setupRoutes brings lo up and adds "local default dev lo" to the local
// table (v4, and v6 unless the kernel lacks it). It reports whether IPv6 is
// usable. Runs inside the namespace.
func setupRoutes() (bool, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return false, fmt.Errorf("egress netlink: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return false, fmt.Errorf("egress: find lo: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return false, fmt.Errorf("egress: set lo up: %w", err)
	}
	r4 := &netlink.Route{
		LinkIndex: lo.Attrs().Index, Table: unix.RT_TABLE_LOCAL, Type: unix.RTN_LOCAL, Scope: netlink.SCOPE_HOST,
		Family: unix.AF_INET, Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
	}
	if err := h.RouteReplace(r4); err != nil {
		return false, fmt.Errorf("egress: add local default route: %w", err)
	}
	r6 := &netlink.Route{
		LinkIndex: lo.Attrs().Index, Table: unix.RT_TABLE_LOCAL, Type: unix.RTN_LOCAL,
		Family: unix.AF_INET6, Dst: &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
	}
	if err := h.RouteReplace(r6); err != nil {
		// IPv6 disabled: v6 connects then fail with ENETUNREACH, fast.
		return false, nil
	}
	return true, nil
}

// open binds the listeners. Runs inside the namespace.
func (ls *listeners) open(v6 bool) error {
	var err error
	if ls.dnsUDP, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(ResolverAddr))); err != nil {
		return listenErr("resolver", err)
	}
	if ls.dnsTCP, err = listenTCP(ResolverAddr); err != nil {
		return listenErr("resolver", err)
	}
	if ls.proxy, err = listenTCP(ProxyAddr); err != nil {
		return listenErr("proxy", err)
	}
	// The transparent listeners share one port on 127.0.0.1 and ::1; in a
	// namespace where the agent already runs (served again) ::1 may have it.
	for range 20 {
		t4, err := listenTCP("127.0.0.1:0")
		if err != nil {
			return listenErr("transparent", err)
		}
		if !v6 {
			ls.transparent = []*net.TCPListener{t4}
			return nil
		}
		t6, err := listenTCP("[::1]:" + strconv.Itoa(t4.Addr().(*net.TCPAddr).Port))
		if err == nil {
			ls.transparent = []*net.TCPListener{t4, t6}
			return nil
		}
		t4.Close()
		if !errors.Is(err, unix.EADDRINUSE) {
			return listenErr("transparent v6", err)
		}
	}
	return listenErr("transparent", unix.EADDRINUSE)
}

func listenTCP(addr string) (*net.TCPListener, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	network := "tcp4"
	if ap.Addr().Is6() {
		network = "tcp6"
	}
	return net.ListenTCP(network, net.TCPAddrFromAddrPort(ap))
}

func listenErr(what string, err error) error {
	cat := errdefs.Unavailable
	if errors.Is(err, unix.EADDRINUSE) {
		cat = errdefs.AlreadyExists
	}
	return errdefs.WithHint(errdefs.Wrap(cat, fmt.Errorf("egress %s listener: %w", what, err)),
		"is another gateway (or the agent) already serving this namespace? Close the previous Netns first")
}
