package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// NewRemote is New for a bus whose NATS server runs elsewhere: the bus
// sidecar of an agent pod on Kubernetes connects to the cluster's NATS
// (with JetStream) at url instead of embedding a server. Everything an
// agent sees is the same: its socket and protocol, channel ACLs, payload
// limits, durable channels as JetStream streams (created on the remote
// server) with one durable consumer per subscribing agent. Messages of a
// project reach every sidecar connected to the same NATS, so channels
// cross pods and nodes without a broker bridge. opts add connection
// options (credentials). ctx bounds the first connection only; the
// connection then reconnects for as long as the server lives.
func NewRemote(ctx context.Context, cfg Config, url string, logger *slog.Logger, opts ...nats.Option) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, errdefs.Wrap(errdefs.InvalidArgument, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("subsystem", "bus")
	node := cfg.NodeID
	if node == "" {
		var r [8]byte
		_, _ = rand.Read(r[:])
		node = "n" + hex.EncodeToString(r[:])
	}
	s := &Server{
		cfg:      cfg,
		log:      logger,
		node:     node,
		done:     make(chan struct{}),
		durable:  map[chanKey]bool{},
		counters: map[chanKey]*counters{},
		channels: map[string]int{},
		atts:     map[*agentSocket]struct{}{},
		bridges:  map[string]*bridge{},
	}
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	all := append([]nats.Option{
		nats.Name("cortex-bus-" + node),
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("bus lost its NATS connection", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { logger.Info("bus reconnected to NATS", "server", c.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			logger.Warn("bus connection error", "subject", subj, "err", err)
		}),
	}, opts...)
	var err error
	s.nc, err = nats.Connect(url, all...)
	if err != nil {
		return nil, errdefs.WithHint(errdefs.Wrap(errdefs.Unavailable, fmt.Errorf("connect to NATS at %s: %w", redactURL(url), err)),
			"check the address and the token (Secret cortex-bus)")
	}
	if max := s.nc.MaxPayload(); max < cfg.MaxPayload+lineOverhead {
		s.nc.Close()
		return nil, errdefs.New(errdefs.FailedPrecondition, "NATS at %s takes payloads up to %d bytes; the bus needs %d (max_payload + line overhead)", redactURL(url), max, cfg.MaxPayload+lineOverhead)
	}
	s.js, err = jetstream.New(s.nc)
	if err != nil {
		s.nc.Close()
		return nil, fmt.Errorf("open jetstream: %w", err)
	}
	if err := s.loadDurable(ctx); err != nil {
		s.nc.Close()
		return nil, errdefs.WithHint(err, "the NATS server needs JetStream enabled")
	}
	logger.Info("bus started", "node", node, "nats", redactURL(url), "durable_channels", len(s.durable))
	return s, nil
}
