package egress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/logkey"
)

// Addresses the gateway serves inside every agent namespace.
const (
	// ResolverAddr is the DNS resolver (udp and tcp).
	ResolverAddr = "127.0.0.1:53"
	// ProxyAddr is the HTTP proxy.
	ProxyAddr = "127.0.0.1:3128"
)

// Reason says why the gateway refused something. Values are stable: they go
// into agents' logs and metrics labels.
type Reason string

const (
	// ReasonNameNotAllowed: a DNS query, CONNECT or proxied request for a
	// name no rule covers (or an internal name not enabled for the agent).
	ReasonNameNotAllowed Reason = "name not allowed"
	// ReasonPortNotAllowed: the name is allowed, the port is not.
	ReasonPortNotAllowed Reason = "port not allowed"
	// ReasonLiteralAddress: a connection to an address the resolver did not
	// hand out (a literal IP, or a synthetic address never answered).
	ReasonLiteralAddress Reason = "literal address"
	// ReasonBlockedAddress: the name resolved only to addresses the gateway
	// never dials (loopback, private, link-local, ...).
	ReasonBlockedAddress Reason = "blocked address"
	// ReasonSNIMismatch: the TLS ClientHello names another server.
	ReasonSNIMismatch Reason = "sni mismatch"
	// ReasonHostMismatch: the plaintext HTTP request names another host.
	ReasonHostMismatch Reason = "host mismatch"
	// ReasonMalformed: a TLS or HTTP head (or DNS query) the gateway could
	// not read unambiguously.
	ReasonMalformed Reason = "malformed request"
	// ReasonProtocol: UDP other than DNS to the resolver, ICMP or another IP
	// protocol, or HTTP/2 prior knowledge in plaintext.
	ReasonProtocol Reason = "protocol not allowed"
	// ReasonTooManyNames: the namespace's synthetic address pool is full.
	ReasonTooManyNames Reason = "too many names"
)

// Denial is one refusal, reported once through NetnsOptions.OnDeny.
type Denial struct {
	Time time.Time
	// Proto is where it was refused: "dns", "tcp" (transparent path),
	// "proxy" (HTTP proxy), "udp", "icmp", "icmpv6" or "ip/<n>".
	Proto string
	// Name is the name asked for, when known.
	Name string
	// Addr is the destination address, when known.
	Addr string
	// Port is the destination port, 0 when none.
	Port   int
	Reason Reason
}

// Attrs gives the denial as slog attributes for an "egress denied" record.
func (d Denial) Attrs() []slog.Attr {
	attrs := []slog.Attr{slog.String("proto", d.Proto)}
	if d.Name != "" {
		attrs = append(attrs, slog.String("name", d.Name))
	}
	if d.Addr != "" {
		attrs = append(attrs, slog.String("addr", d.Addr))
	}
	if d.Port != 0 {
		attrs = append(attrs, slog.Int("port", d.Port))
	}
	return append(attrs, slog.String("reason", string(d.Reason)))
}

// Counters are a namespace's totals since ServeNetns.
type Counters struct {
	DNSQueries uint64            // queries the resolver answered or refused
	Allowed    uint64            // streams let through (transparent and proxy)
	Denied     map[Reason]uint64 // refusals by reason; each was one OnDeny call
	DialErrors uint64            // allowed streams whose destination failed to resolve or connect
	BytesOut   uint64            // agent to destination, allowed streams
	BytesIn    uint64            // destination to agent, allowed streams
	// Dropped counts connections over Config.MaxConns (reset at once) and
	// kernel refusals lost before the gateway could read them (NFLOG
	// overrun); neither produced an OnDeny call.
	Dropped uint64
}

// Resolver resolves allowed names when a stream is dialled. *net.Resolver
// implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

var _ Resolver = (*net.Resolver)(nil)

// DialFunc connects to an in-daemon service behind an internal name. ctx
// bounds the dial (Config.DialTimeout) and is cancelled when the namespace
// closes; the returned conn must outlive it.
type DialFunc func(ctx context.Context) (net.Conn, error)

// Config configures the gateway for the whole daemon.
type Config struct {
	// Hosts pins names to addresses (the daemon config's egress.hosts),
	// bypassing DNS and the blocked-address check. It never grants a name:
	// the agent's policy still has to allow it.
	Hosts map[string]string
	// Resolver resolves allowed names at dial time; nil uses
	// net.DefaultResolver (the host's resolv.conf).
	Resolver Resolver
	// DialTimeout bounds resolving and connecting one stream; 0 means 10s.
	DialTimeout time.Duration
	// MaxConns bounds the concurrent streams of one namespace; over it new
	// connections are reset. 0 means 1024.
	MaxConns int
}

// Gateway is the daemon's egress gateway; one per daemon. Its methods are
// safe for concurrent use.
type Gateway struct {
	log         *slog.Logger
	hosts       map[string]netip.Addr
	resolver    Resolver
	dialTimeout time.Duration
	maxConns    int

	// firstWait is how long a new stream waits for the client's first bytes
	// before treating the protocol as server-speaks-first; headTimeout
	// bounds reading a TLS or HTTP head once it started.
	firstWait   time.Duration
	headTimeout time.Duration
	poolSize    int

	mu         sync.RWMutex
	internal   map[string]DialFunc
	namespaces map[*Netns]struct{}
}

// New checks cfg and returns a gateway. logger may be nil.
func New(cfg Config, logger *slog.Logger) (*Gateway, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{
		log:         logger.With(logkey.Subsystem, "egress"),
		hosts:       map[string]netip.Addr{},
		resolver:    cfg.Resolver,
		dialTimeout: cfg.DialTimeout,
		maxConns:    cfg.MaxConns,
		firstWait:   300 * time.Millisecond,
		headTimeout: 10 * time.Second,
		poolSize:    defaultPoolSize,
		internal:    map[string]DialFunc{},
		namespaces:  map[*Netns]struct{}{},
	}
	if g.resolver == nil {
		g.resolver = net.DefaultResolver
	}
	if g.dialTimeout <= 0 {
		g.dialTimeout = 10 * time.Second
	}
	if g.maxConns <= 0 {
		g.maxConns = 1024
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(cfg.Hosts)) {
		n, err := normalizeName(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("egress.hosts: %q: %v", name, err))
			continue
		}
		a, err := netip.ParseAddr(cfg.Hosts[name])
		if err != nil || a.Zone() != "" {
			errs = append(errs, fmt.Errorf("egress.hosts: %q: %q is not an IP address", name, cfg.Hosts[name]))
			continue
		}
		g.hosts[n] = a.Unmap()
	}
	if len(errs) > 0 {
		return nil, errdefs.Wrap(errdefs.InvalidArgument, errors.Join(errs...))
	}
	return g, nil
}

// RegisterInternal routes name to dial for the agents whose NetnsOptions
// list it. The name is never resolved upstream and network.access cannot
// grant it. Registering a name again replaces its dial function, also for
// namespaces already running.
func (g *Gateway) RegisterInternal(name string, dial DialFunc) error {
	n, err := normalizeName(name)
	if err != nil {
		return errdefs.New(errdefs.InvalidArgument, "internal name %q: %v", name, err)
	}
	if dial == nil {
		return errdefs.New(errdefs.InvalidArgument, "internal name %q: nil dial function", name)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.internal[n] = dial
	return nil
}

// internalDial returns the dial function of a registered internal name.
func (g *Gateway) internalDial(name string) (DialFunc, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	d, ok := g.internal[name]
	return d, ok
}

// Close closes every namespace still open.
func (g *Gateway) Close() error {
	g.mu.Lock()
	as := make([]*Netns, 0, len(g.namespaces))
	for a := range g.namespaces {
		as = append(as, a)
	}
	g.mu.Unlock()
	var errs []error
	for _, a := range as {
		if err := a.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// NetnsOptions are one agent's egress settings.
type NetnsOptions struct {
	// Policy is the agent's network.access.
	Policy Policy
	// Internal lists the internal names enabled for this agent; each must
	// be registered with RegisterInternal.
	Internal []string
	// OnDeny is called once per refusal, from the gateway's goroutines; it
	// must be safe for concurrent use and return quickly. May be nil.
	OnDeny func(Denial)
	// Logger, when set, replaces the gateway's logger for this namespace
	// (e.g. with the agent's attributes).
	Logger *slog.Logger
	// Learn (cortex run --learn) answers the DNS queries of names the
	// policy does not allow with synthetic addresses too, instead of
	// refusing them: the agent's connection to such a name is then
	// refused by the gateway with the port it was for (a Denial with Name
	// and Port), which is what a manifest line needs. No connection goes
	// anywhere it would not go otherwise.
	Learn bool
	// Restore carries name-to-address mappings from an earlier Netns
	// of the same agent (Netns.Mappings, kept across a daemon
	// restart), so addresses the agent cached keep their meaning.
	Restore map[string]netip.Addr
}
