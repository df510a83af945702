package egress

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cortexrt/cortex/internal/logkey"
)

// Netns is the gateway serving one agent's namespace. It lives until
// Close (or Gateway.Close).
type Netns struct {
	g        *Gateway
	log      *slog.Logger
	policy   Policy
	internal map[string]bool
	onDeny   func(Denial)
	learn    bool
	pool     *pool
	sem      chan struct{}
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	// transparentPort is the namespace-side port nftables redirects to.
	transparentPort int

	mu      sync.Mutex
	closed  bool
	closers []io.Closer // listeners and the NFLOG socket
	conns   map[net.Conn]struct{}

	dnsQueries, allowed, dialErrors, bytesOut, bytesIn, dropped atomic.Uint64
	deniedMu                                                    sync.Mutex
	denied                                                      map[Reason]uint64
}

func openNetns(g *Gateway, opts NetnsOptions) (*Netns, error) {
	a := &Netns{
		g:        g,
		log:      g.log,
		policy:   opts.Policy,
		internal: map[string]bool{},
		onDeny:   opts.OnDeny,
		learn:    opts.Learn,
		pool:     newPool(g.poolSize),
		sem:      make(chan struct{}, g.maxConns),
		conns:    map[net.Conn]struct{}{},
		denied:   map[Reason]uint64{},
	}
	if opts.Logger != nil {
		a.log = opts.Logger.With(logkey.Subsystem, "egress")
	}
	var errs []error
	for _, name := range opts.Internal {
		n, err := normalizeName(name)
		if err == nil {
			if _, ok := g.internalDial(n); !ok {
				err = errors.New("not registered with RegisterInternal")
			}
		}
		if err != nil {
			errs = append(errs, errors.New("internal name "+quote(name)+": "+err.Error()))
			continue
		}
		a.internal[n] = true
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for name, addr := range opts.Restore {
		if n, ok := canonicalName(name); ok && a.nameAllowed(n) {
			a.pool.restore(n, addr)
		}
	}
	return a, nil
}

func quote(s string) string { return "\"" + s + "\"" }

// nameAllowed reports whether the resolver answers name (canonical): an
// internal name enabled for this agent, or a name the policy covers that is
// not a registered internal name.
func (a *Netns) nameAllowed(name string) bool {
	if a.internal[name] {
		return true
	}
	if _, ok := a.g.internalDial(name); ok {
		return false
	}
	return a.policy.AllowsName(name)
}

// learnName reports whether, learning, the resolver gives name (not
// allowed) an address anyway, so the connection that follows is refused
// with its port known. Cortex's own internal names are never given one.
func (a *Netns) learnName(name string) bool {
	if !a.learn {
		return false
	}
	_, internal := a.g.internalDial(name)
	return !internal
}

// route is where an allowed stream goes.
type route struct {
	name   string
	port   int
	dial   DialFunc     // internal name
	addrs  []netip.Addr // resolved and vetted
	pinned bool         // from Config.Hosts
}

// permit checks name:port (name canonical) against the internal names and
// the policy.
func (a *Netns) permit(name string, port int) (route, Reason) {
	rt := route{name: name, port: port}
	if a.internal[name] {
		rt.dial, _ = a.g.internalDial(name)
		if rt.dial != nil {
			return rt, ""
		}
		return rt, ReasonNameNotAllowed
	}
	if !a.nameAllowed(name) {
		return rt, ReasonNameNotAllowed
	}
	if !a.policy.Allows(name, port) {
		return rt, ReasonPortNotAllowed
	}
	return rt, ""
}

// deny records one refusal and reports it.
func (a *Netns) deny(d Denial, reason Reason) {
	d.Reason = reason
	if d.Time.IsZero() {
		d.Time = time.Now()
	}
	if len(d.Name) > 255 {
		d.Name = d.Name[:255]
	}
	a.deniedMu.Lock()
	a.denied[reason]++
	a.deniedMu.Unlock()
	args := make([]any, 0, 6)
	for _, at := range d.Attrs() {
		args = append(args, at)
	}
	a.log.Debug("egress denied", args...)
	if a.onDeny != nil {
		a.onDeny(d)
	}
}

// ResolvConf is the agent's /etc/resolv.conf: the gateway's resolver only,
// no search list (single-label names such as "ice-kernel" are asked as is).
func (a *Netns) ResolvConf() []byte { return ResolvConf() }

// ResolvConf is the resolv.conf every served agent gets; it does not
// depend on the namespace, so a sandbox can be built before it exists.
func ResolvConf() []byte {
	host, _, _ := strings.Cut(ResolverAddr, ":")
	return []byte("nameserver " + host + "\noptions timeout:2 attempts:2\n")
}

// Env is the proxy environment for the agent. ALL_PROXY is not set: the
// transparent path already carries every other TCP protocol, and clients
// would send non-HTTP protocols to an HTTP proxy.
func (a *Netns) Env() []string { return ProxyEnv() }

// ProxyEnv is Env without a namespace (it does not depend on one).
func ProxyEnv() []string {
	p := "http://" + ProxyAddr
	const noProxy = "localhost,127.0.0.1,::1"
	return []string{
		"HTTP_PROXY=" + p, "HTTPS_PROXY=" + p, "http_proxy=" + p, "https_proxy=" + p,
		"NO_PROXY=" + noProxy, "no_proxy=" + noProxy,
	}
}

// Stats returns the namespace's counters.
func (a *Netns) Stats() Counters {
	c := Counters{
		DNSQueries: a.dnsQueries.Load(),
		Allowed:    a.allowed.Load(),
		DialErrors: a.dialErrors.Load(),
		BytesOut:   a.bytesOut.Load(),
		BytesIn:    a.bytesIn.Load(),
		Dropped:    a.dropped.Load(),
		Denied:     map[Reason]uint64{},
	}
	a.deniedMu.Lock()
	for k, v := range a.denied {
		c.Denied[k] = v
	}
	a.deniedMu.Unlock()
	return c
}

// Mappings returns the names the resolver has answered and their synthetic
// addresses; see NetnsOptions.Restore.
func (a *Netns) Mappings() map[string]netip.Addr { return a.pool.snapshot() }

// Close stops the listeners, cuts every stream and waits for the gateway's
// goroutines to end. The namespace keeps its nftables rules and routes (it
// is about to be destroyed) but holds no reference from the daemon after
// Close. Close is idempotent.
func (a *Netns) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	closers := a.closers
	conns := make([]net.Conn, 0, len(a.conns))
	for c := range a.conns {
		conns = append(conns, c)
	}
	a.mu.Unlock()

	a.cancel()
	var errs []error
	for _, c := range closers {
		if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	a.wg.Wait()
	a.g.mu.Lock()
	delete(a.g.namespaces, a)
	a.g.mu.Unlock()
	return errors.Join(errs...)
}

// goServe runs fn on a goroutine owned by the namespace.
func (a *Netns) goServe(fn func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		fn()
	}()
}

// track registers c so Close cuts it; it returns false (and closes c) when
// the namespace is already closed.
func (a *Netns) track(c net.Conn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		c.Close()
		return false
	}
	a.conns[c] = struct{}{}
	return true
}

func (a *Netns) untrack(c net.Conn) {
	a.mu.Lock()
	delete(a.conns, c)
	a.mu.Unlock()
	c.Close()
}

// acquire takes a stream slot, or returns false when MaxConns are in use.
func (a *Netns) acquire() bool {
	select {
	case a.sem <- struct{}{}:
		return true
	default:
		a.dropped.Add(1)
		return false
	}
}

func (a *Netns) release() { <-a.sem }

// isClosed reports whether Close has started.
func (a *Netns) isClosed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.closed
}
