package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/logkey"
)

// Broker carries one project's channels between nodes. It is the bus's
// extension point for cross-node transports (Redis Pub/Sub, NATS).
type Broker interface {
	// Publish sends data on subject. It returns an error when the broker
	// cannot take the message now; the bridge retries with backoff.
	Publish(ctx context.Context, subject string, data []byte) error
	// Run delivers every message whose subject starts with prefix until
	// ctx ends, reconnecting with backoff by itself. It reports each
	// change of connectivity through state (err is nil when up).
	Run(ctx context.Context, prefix string, deliver func(subject string, data []byte), state func(up bool, err error))
	// Close releases the broker's connections.
	Close() error
}

// wireEnvelope is a message on a broker.
type wireEnvelope struct {
	V       int             `json:"v"`
	Node    string          `json:"node"`
	Project string          `json:"project"`
	Channel string          `json:"channel"`
	From    string          `json:"from"`
	ID      string          `json:"id"`
	Time    time.Time       `json:"time"`
	Payload json.RawMessage `json:"payload"`
}

type bridge struct {
	s       *Server
	project string
	url     string
	broker  Broker
	log     *slog.Logger
	out     chan []byte
	sub     *nats.Subscription
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	conn                                  atomic.Int32 // 0 unknown, 1 up, 2 down
	forwarded, received, dropped, errorsN atomic.Uint64
}

// SetBroker bridges a project's channels through an external broker
// ("redis://host:port[/db]", "rediss://...", "nats://host:port",
// "tls://..."), replacing any previous one; "" removes the bridge. Setting
// the URL already in force does nothing. The broker need not be reachable
// now: the bridge connects, and reconnects after outages, in the
// background, while local delivery keeps working. Messages that entered
// on this node go out; messages from other nodes come in (each tagged with
// its node id, so none loops back).
func (s *Server) SetBroker(ctx context.Context, project, rawURL string) error {
	if err := validName("project", project); err != nil {
		return err
	}
	var newBroker Broker
	if rawURL != "" {
		var err error
		newBroker, err = dialBroker(rawURL, s.log)
		if err != nil {
			return err
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		if newBroker != nil {
			_ = newBroker.Close()
		}
		return errdefs.New(errdefs.Unavailable, "bus is closed")
	}
	old := s.bridges[project]
	if old != nil && old.url == rawURL {
		s.mu.Unlock()
		if newBroker != nil {
			_ = newBroker.Close()
		}
		return nil
	}
	delete(s.bridges, project)
	s.mu.Unlock()
	if old != nil {
		old.stop()
	}
	if newBroker == nil {
		return nil
	}
	b := &bridge{s: s, project: project, url: rawURL, broker: newBroker,
		log: s.log.With(logkey.Project, project, "broker", redactURL(rawURL)),
		out: make(chan []byte, s.cfg.BridgeBuffer)}
	if err := b.start(); err != nil {
		_ = newBroker.Close()
		return err
	}
	s.mu.Lock()
	if s.closed || s.bridges[project] != nil {
		s.mu.Unlock()
		b.stop()
		return errdefs.New(errdefs.Unavailable, "bus broker for %s changed concurrently", project)
	}
	s.bridges[project] = b
	s.mu.Unlock()
	return nil
}

// Brokers returns the state of every bridge, sorted by project.
func (s *Server) Brokers() []api.BusBrokerStats {
	s.mu.RLock()
	out := make([]api.BusBrokerStats, 0, len(s.bridges))
	for _, b := range s.bridges {
		out = append(out, api.BusBrokerStats{Project: b.project, URL: redactURL(b.url), Connected: b.conn.Load() == 1,
			Forwarded: b.forwarded.Load(), Received: b.received.Load(), Dropped: b.dropped.Load(), Errors: b.errorsN.Load()})
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Project < out[j].Project })
	return out
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparsable url]"
	}
	return u.Redacted()
}

func dialBroker(raw string, log *slog.Logger) (Broker, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errdefs.New(errdefs.InvalidArgument, "bus.broker %q is not a URL", redactURL(raw))
	}
	switch u.Scheme {
	case "redis", "rediss", "unix":
		return newRedisBroker(raw)
	case "nats", "tls":
		return newNATSBroker(raw, log)
	}
	return nil, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "bus.broker scheme %q is not supported", u.Scheme),
		"use redis://host:6379 or nats://host:4222")
}

func (b *bridge) start() error {
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	prefix := projectPrefix(b.project)
	sub, err := b.s.nc.Subscribe(prefix+">", b.local)
	if err != nil {
		cancel()
		return errdefs.Wrap(errdefs.Unavailable, fmt.Errorf("watch project %s for the broker: %w", b.project, err))
	}
	b.sub = sub
	b.wg.Add(2)
	go func() {
		defer b.wg.Done()
		b.broker.Run(ctx, prefix, b.remote, b.state)
	}()
	go func() {
		defer b.wg.Done()
		b.forward(ctx)
	}()
	b.log.Info("bus broker bridge started", "node", b.s.node)
	return nil
}

func (b *bridge) stop() {
	_ = b.sub.Unsubscribe()
	b.cancel()
	b.wg.Wait()
	_ = b.broker.Close()
	b.log.Info("bus broker bridge stopped")
}

// local takes messages published on this node and queues them for the
// broker. Messages that came from another node are not sent back.
func (b *bridge) local(m *nats.Msg) {
	e := decodeEnvelope(m)
	if e.Node != b.s.node || e.Channel == "" {
		return
	}
	data, err := json.Marshal(wireEnvelope{V: 1, Node: e.Node, Project: b.project, Channel: e.Channel,
		From: e.From, ID: e.ID, Time: e.Time, Payload: e.Payload})
	if err != nil {
		b.log.Error("bus broker encode", logkey.Err, err)
		return
	}
	select {
	case b.out <- data:
	default:
		b.dropped.Add(1)
	}
}

// forward publishes queued messages, retrying each while the broker is
// unreachable; the queue absorbs the outage until it is full.
func (b *bridge) forward(ctx context.Context) {
	for {
		var data []byte
		select {
		case <-ctx.Done():
			return
		case data = <-b.out:
		}
		subj := subjectOf(data)
		backoff := 100 * time.Millisecond
		for {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := b.broker.Publish(pctx, subj, data)
			cancel()
			if err == nil {
				b.forwarded.Add(1)
				break
			}
			if ctx.Err() != nil {
				return
			}
			b.errorsN.Add(1)
			b.state(false, err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}
}

// subjectOf reads the subject back from an encoded envelope.
func subjectOf(data []byte) string {
	var e struct {
		Project string `json:"project"`
		Channel string `json:"channel"`
	}
	_ = json.Unmarshal(data, &e)
	return subject(e.Project, e.Channel)
}

// remote puts a message from another node on the local channel.
func (b *bridge) remote(subj string, data []byte) {
	var e wireEnvelope
	if err := json.Unmarshal(data, &e); err != nil {
		b.log.Warn("bus broker: undecodable message", "subject", subj, logkey.Err, err)
		return
	}
	if e.Node == b.s.node {
		return // our own, echoed by the broker
	}
	if e.Project != b.project || ValidChannel(e.Channel) != nil || !strings.HasPrefix(subj, projectPrefix(b.project)) || !config.ValidNodeID(e.Node) {
		b.log.Warn("bus broker: message for another project or malformed", "subject", subj)
		return
	}
	p, err := b.s.checkPayload(e.Payload, true)
	if err != nil {
		b.log.Warn("bus broker: bad payload", "channel", e.Channel, logkey.Err, err)
		return
	}
	if e.ID == "" || !validMsgID(e.ID) {
		e.ID = newID()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.s.publish(ctx, &envelope{Project: b.project, Channel: e.Channel, From: e.From, ID: e.ID,
		Node: e.Node, Time: e.Time, Payload: p}); err != nil {
		b.log.Warn("bus broker: local delivery", "channel", e.Channel, logkey.Err, err)
		return
	}
	b.received.Add(1)
}

// state logs connectivity changes once per transition.
func (b *bridge) state(up bool, err error) {
	now := int32(2)
	if up {
		now = 1
	}
	if was := b.conn.Swap(now); was == now {
		return
	}
	if up {
		b.log.Info("bus broker connected")
		return
	}
	b.errorsN.Add(1)
	b.log.Warn("bus broker unavailable; local delivery continues, reconnecting", logkey.Err, err)
}
