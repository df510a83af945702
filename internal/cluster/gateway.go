package cluster

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/cortexrt/cortex/internal/egress"
	"github.com/cortexrt/cortex/internal/errdefs"
)

// GatewayOptions are egress-gateway's flags.
type GatewayOptions struct {
	// Listen is the proxy's address (":3128").
	Listen string
	// Allow is the agent's network.access.
	Allow []string
	// Registry is the bundle registry's host[:port]: allowed (so the
	// fetch init container reaches it through the proxy) and pinned to
	// the address it resolves to at start, which may be private.
	Registry string
	// Forwards are "LISTEN=HOST:PORT" TCP forwards (the bus to NATS).
	Forwards []string
	// Lookup resolves the registry's host (nil: the pod's resolver).
	Lookup func(ctx context.Context, host string) ([]string, error)
	// Ready, when set, is called once everything listens.
	Ready func(proxy net.Addr, forwards []net.Addr)
}

func gatewayFlags() (*flag.FlagSet, runner) {
	var o GatewayOptions
	var allow, fwd list
	fs := flag.NewFlagSet("egress-gateway", flag.ContinueOnError)
	fs.StringVar(&o.Listen, "listen", ":3128", "proxy address")
	fs.Var(&allow, "allow", "network.access entry (repeatable)")
	fs.StringVar(&o.Registry, "registry", "", "the bundle registry host[:port]")
	fs.Var(&fwd, "forward", "LISTEN=HOST:PORT TCP forward (repeatable)")
	return fs, func(ctx context.Context, log *slog.Logger) error {
		o.Allow, o.Forwards = allow, fwd
		return EgressGateway(ctx, o, log)
	}
}

// EgressGateway serves until ctx ends.
func EgressGateway(ctx context.Context, o GatewayOptions, log *slog.Logger) error {
	lookup := o.Lookup
	if lookup == nil {
		lookup = net.DefaultResolver.LookupHost
	}
	entries := append([]string(nil), o.Allow...)
	hosts := map[string]string{}
	if o.Registry != "" {
		host, port, err := net.SplitHostPort(o.Registry)
		if err != nil {
			host, port = o.Registry, "443"
		}
		addr, err := resolve(ctx, lookup, host)
		if err != nil {
			return errdefs.Wrap(errdefs.Unavailable, fmt.Errorf("registry %s: %w", host, err))
		}
		hosts[host] = addr
		entries = append(entries, host+":"+port)
	}
	pol, err := egress.ParsePolicy(entries)
	if err != nil {
		return errdefs.Wrap(errdefs.InvalidArgument, err)
	}
	g, err := egress.New(egress.Config{Hosts: hosts}, log)
	if err != nil {
		return err
	}
	defer g.Close()
	l, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return err
	}
	a, err := g.ServeProxy(ctx, l, egress.NetnsOptions{Policy: pol, OnDeny: func(d egress.Denial) {
		log.Warn("egress denied", "name", d.Name, "port", d.Port, "reason", string(d.Reason))
	}})
	if err != nil {
		l.Close()
		return err
	}
	defer a.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	var fwdAddrs []net.Addr
	for _, f := range o.Forwards {
		listen, target, ok := strings.Cut(f, "=")
		if !ok || listen == "" || target == "" {
			return errdefs.New(errdefs.InvalidArgument, "--forward %q is not LISTEN=HOST:PORT", f)
		}
		fl, err := net.Listen("tcp", listen)
		if err != nil {
			return err
		}
		defer fl.Close()
		fwdAddrs = append(fwdAddrs, fl.Addr())
		wg.Add(1)
		go func() {
			defer wg.Done()
			forward(ctx, fl, target, log)
		}()
	}
	log.Info("egress gateway serving", "proxy", l.Addr().String(), "allow", pol.String(), "forwards", o.Forwards)
	if o.Ready != nil {
		o.Ready(l.Addr(), fwdAddrs)
	}
	<-ctx.Done()
	return nil
}

func resolve(ctx context.Context, lookup func(context.Context, string) ([]string, error), host string) (string, error) {
	if ip := net.ParseIP(host); ip != nil {
		return ip.String(), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	addrs, err := lookup(ctx, host)
	if err != nil {
		return "", err
	}
	return addrs[0], nil
}

// forward accepts on l and splices each connection to target (resolved
// per connection) until ctx ends.
func forward(ctx context.Context, l net.Listener, target string, log *slog.Logger) {
	go func() { <-ctx.Done(); l.Close() }()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			d := net.Dialer{Timeout: 10 * time.Second}
			up, err := d.DialContext(ctx, "tcp", target)
			if err != nil {
				log.Warn("forward", "target", target, "err", err)
				return
			}
			defer up.Close()
			stop := context.AfterFunc(ctx, func() { c.Close(); up.Close() })
			defer stop()
			done := make(chan struct{})
			go func() {
				_, _ = io.Copy(up, c)
				if tc, ok := up.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				close(done)
			}()
			_, _ = io.Copy(c, up)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			<-done
		}()
	}
}
