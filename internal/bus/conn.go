package bus

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/logkey"
)

// conn is one agent connection on an agent socket.
type conn struct {
	a   *agentSocket
	s   *Server
	nc  *net.UnixConn
	log *slog.Logger

	wmu sync.Mutex
	w   *bufio.Writer
	// hold is set once the reader loop runs: it flushes replies itself
	// whenever no further request is already buffered.
	hold bool

	mu        sync.Mutex
	closing   bool
	subs      map[string]*subscription
	pending   map[string]pendingMsg
	nextSub   uint64
	nextAck   uint64
	keepalive bool
	wg        sync.WaitGroup // pumps and keepalive
	stop      chan struct{}  // closed when the connection ends
}

type pendingMsg struct {
	sub *subscription
	m   *nats.Msg // a JetStream delivery; settled by publishing to m.Reply
}

type subscription struct {
	id      string
	channel string
	durable bool
	c       *counters
	done    chan struct{}
	once    sync.Once

	ns *nats.Subscription // core subscription, or the durable pull inbox
	q  chan *nats.Msg     // non-durable: bounded buffer; durable: pulled messages
}

func newConn(a *agentSocket, nc *net.UnixConn) *conn {
	return &conn{
		a: a, s: a.s, nc: nc, log: a.log,
		w:       bufio.NewWriterSize(nc, 64<<10),
		subs:    map[string]*subscription{},
		pending: map[string]pendingMsg{},
		stop:    make(chan struct{}),
	}
}

func (c *conn) serve() {
	defer c.finish()
	if uid, err := peerUID(c.nc); err != nil || (uid >= 0 && c.a.uid >= 0 && uid != c.a.uid && uid != 0) {
		c.log.Warn("bus connection refused: peer uid does not own the socket", "peer_uid", uid, "socket_uid", c.a.uid)
		c.sendError("", "", errdefs.New(errdefs.PermissionDenied, "this bus socket belongs to another user"))
		return
	}
	c.sendHello()
	c.hold = true
	r := bufio.NewReaderSize(c.nc, 64<<10)
	limit := int(c.s.cfg.MaxPayload) + lineOverhead
	for {
		// Replies are flushed only before the reader could block, so the
		// replies to pipelined requests go out together.
		if !lineBuffered(r) {
			if err := c.write(nil, true); err != nil {
				return
			}
		}
		line, over, err := readLine(r, limit)
		if err != nil {
			return
		}
		if over != nil {
			c.sendError(extractID(over), "", &errdefs.Error{Cat: errdefs.InvalidArgument, Err: ErrPayloadTooLarge,
				Msg: fmt.Sprintf("request line is over %d bytes; payloads are limited to %d", limit, c.s.cfg.MaxPayload)})
			continue
		}
		if len(line) == 0 {
			continue
		}
		c.handle(line)
	}
}

// lineBuffered reports whether a complete request line is already read
// into r's buffer.
func lineBuffered(r *bufio.Reader) bool {
	n := r.Buffered()
	if n == 0 {
		return false
	}
	b, _ := r.Peek(n)
	return bytes.IndexByte(b, '\n') >= 0
}

// finish ends the connection: subscriptions stop, unacknowledged durable
// messages go back to the store.
func (c *conn) finish() {
	c.mu.Lock()
	c.closing = true
	subs := c.subs
	c.subs = map[string]*subscription{}
	c.mu.Unlock()
	for _, sub := range subs {
		c.stopSub(sub)
	}
	close(c.stop)
	_ = c.nc.Close()
	c.wg.Wait()
	c.mu.Lock()
	for tok, p := range c.pending {
		c.s.settle(p.m, ackNak)
		delete(c.pending, tok)
	}
	c.mu.Unlock()
}

// write sends one protocol line; flush pushes buffered lines out.
func (c *conn) write(line []byte, flush bool) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.w.Write(line); err != nil {
		return err
	}
	if flush {
		return c.w.Flush()
	}
	return nil
}

func (c *conn) writeJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		c.log.Error("bus encode reply", logkey.Err, err)
		return
	}
	if err := c.write(append(b, '\n'), !c.hold); err != nil {
		_ = c.nc.Close()
	}
}

type helloLine struct {
	Op         string `json:"op"`
	Protocol   int    `json:"protocol"`
	Project    string `json:"project"`
	Agent      string `json:"agent"`
	Node       string `json:"node"`
	MaxPayload int64  `json:"max_payload"`
}

// ProtocolVersion is the wire protocol version sent in hello.
const ProtocolVersion = 1

func (c *conn) sendHello() {
	c.writeJSON(helloLine{Op: "hello", Protocol: ProtocolVersion, Project: c.a.id.Project, Agent: c.a.id.Agent,
		Node: c.s.node, MaxPayload: c.s.cfg.MaxPayload})
}

// request is one line from an agent.
type request struct {
	Op      string          `json:"op"`
	ID      string          `json:"id"`
	Channel string          `json:"channel"`
	Payload json.RawMessage `json:"payload"`
	MsgID   string          `json:"msg_id"`
	Sub     string          `json:"sub"`
	Ack     string          `json:"ack"`
}

// reply answers a request: op "ok" or "error".
type reply struct {
	Op      string `json:"op"`
	ID      string `json:"id,omitempty"`
	Sub     string `json:"sub,omitempty"`
	MsgID   string `json:"msg_id,omitempty"`
	Seq     uint64 `json:"seq,omitempty"`
	Durable bool   `json:"durable,omitempty"`
	Code    string `json:"code,omitempty"`
	Error   string `json:"error,omitempty"`
	Hint    string `json:"hint,omitempty"`
}

// Error codes of the wire protocol.
const (
	CodeInvalid         = "invalid"
	CodeForbidden       = "forbidden"
	CodePayloadTooLarge = "payload_too_large"
	CodeNotFound        = "not_found"
	CodeUnavailable     = "unavailable"
	CodeInternal        = "internal"
)

func errorCode(err error) string {
	if errors.Is(err, ErrPayloadTooLarge) {
		return CodePayloadTooLarge
	}
	switch errdefs.CategoryOf(err) {
	case errdefs.InvalidArgument, errdefs.AlreadyExists, errdefs.FailedPrecondition, errdefs.Unsupported:
		return CodeInvalid
	case errdefs.PermissionDenied:
		return CodeForbidden
	case errdefs.NotFound:
		return CodeNotFound
	case errdefs.Unavailable:
		return CodeUnavailable
	}
	return CodeInternal
}

func (c *conn) sendError(id, sub string, err error) {
	c.writeJSON(reply{Op: "error", ID: id, Sub: sub, Code: errorCode(err), Error: err.Error(), Hint: errdefs.HintOf(err)})
}

func (c *conn) handle(line []byte) {
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		c.sendError(extractID(line), "", errdefs.New(errdefs.InvalidArgument, "request is not a JSON object: %v", err))
		return
	}
	var err error
	switch req.Op {
	case "publish":
		err = c.publish(&req)
	case "subscribe":
		err = c.subscribe(&req)
	case "unsubscribe":
		err = c.unsubscribe(&req)
	case "ack", "nak":
		err = c.ack(&req)
	case "ping":
		c.writeJSON(reply{Op: "ok", ID: req.ID})
	default:
		err = errdefs.New(errdefs.InvalidArgument, "unknown op %q; use publish, subscribe, unsubscribe, ack, nak or ping", req.Op)
	}
	if err != nil {
		c.sendError(req.ID, req.Sub, err)
	}
}

func (c *conn) publish(req *request) error {
	if err := ValidChannel(req.Channel); err != nil {
		return err
	}
	if !allowed(c.a.pol.Publish, req.Channel) {
		c.s.deny(c.a.id, "publish", req.Channel)
		return errdefs.WithHint(errdefs.New(errdefs.PermissionDenied, "agent %q may not publish to channel %q", c.a.id.Agent, req.Channel),
			"add the channel to the agent's bus.publish capability in cortex.yaml")
	}
	p, err := c.s.checkPayload(req.Payload, true)
	if err != nil {
		return err
	}
	id := req.MsgID
	if id == "" {
		id = newID()
	} else if !validMsgID(id) {
		return errdefs.New(errdefs.InvalidArgument, "msg_id must be 1-128 printable ASCII characters without spaces or quotes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seq, err := c.s.publish(ctx, &envelope{Project: c.a.id.Project, Channel: req.Channel, From: c.a.id.Agent,
		ID: id, Node: c.s.node, Time: time.Now().UTC(), Payload: p})
	if err != nil {
		return err
	}
	c.writeJSON(reply{Op: "ok", ID: req.ID, MsgID: id, Seq: seq})
	return nil
}

func (c *conn) subscribe(req *request) error {
	if err := ValidChannel(req.Channel); err != nil {
		return err
	}
	if !allowed(c.a.pol.Subscribe, req.Channel) {
		c.s.deny(c.a.id, "subscribe", req.Channel)
		return errdefs.WithHint(errdefs.New(errdefs.PermissionDenied, "agent %q may not subscribe to channel %q", c.a.id.Agent, req.Channel),
			"add the channel to the agent's bus.subscribe capability in cortex.yaml")
	}
	project := c.a.id.Project
	counters, err := c.s.counter(project, req.Channel)
	if err != nil {
		return err
	}
	sub := &subscription{channel: req.Channel, durable: c.s.isDurable(project, req.Channel),
		c: counters, done: make(chan struct{})}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return errdefs.New(errdefs.Unavailable, "connection is closing")
	}
	c.nextSub++
	sub.id = strconv.FormatUint(c.nextSub, 10)
	c.mu.Unlock()

	if sub.durable {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.s.js.CreateOrUpdateConsumer(ctx, streamName(project, req.Channel), jetstream.ConsumerConfig{
			Durable:       consumerName(c.a.id.Agent),
			Description:   c.a.id.Agent,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       c.s.cfg.AckWait,
			MaxAckPending: c.s.cfg.MaxAckPending,
			MaxDeliver:    -1,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			FilterSubject: subject(project, req.Channel),
		})
		cancel()
		if err != nil {
			return errdefs.Wrap(errdefs.Unavailable, fmt.Errorf("open durable subscription to %s: %w", req.Channel, err))
		}
		// Pulled messages land here; at most one batch is outstanding.
		sub.q = make(chan *nats.Msg, 2*pullBatch(c.s.cfg)+8)
		ns, err := c.s.nc.ChanSubscribe(c.s.nc.NewInbox(), sub.q)
		if err != nil {
			return errdefs.Wrap(errdefs.Unavailable, fmt.Errorf("subscribe to %s: %w", req.Channel, err))
		}
		sub.ns = ns
	} else {
		sub.q = make(chan *nats.Msg, c.s.cfg.SubscriberBuffer)
		ns, err := c.s.nc.Subscribe(subject(project, req.Channel), func(m *nats.Msg) {
			select {
			case sub.q <- m:
			default:
				sub.c.dropped.Add(1)
			}
		})
		if err == nil {
			err = c.s.nc.Flush()
		}
		if err != nil {
			if ns != nil {
				_ = ns.Unsubscribe()
			}
			return errdefs.Wrap(errdefs.Unavailable, fmt.Errorf("subscribe to %s: %w", req.Channel, err))
		}
		sub.ns = ns
	}
	sub.c.subscribers.Add(1)
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		c.stopSub(sub)
		return errdefs.New(errdefs.Unavailable, "connection is closing")
	}
	c.subs[sub.id] = sub
	startKeepalive := sub.durable && !c.keepalive
	if startKeepalive {
		c.keepalive = true
	}
	c.wg.Add(1)
	c.mu.Unlock()

	// The reply goes out before the pump starts, so it precedes the
	// subscription's first message on the wire.
	c.writeJSON(reply{Op: "ok", ID: req.ID, Sub: sub.id, Durable: sub.durable})
	if sub.durable {
		go c.pumpDurable(sub, project)
	} else {
		go c.pumpCore(sub)
	}
	if startKeepalive {
		c.wg.Add(1)
		go c.keepAlive()
	}
	return nil
}

func (c *conn) unsubscribe(req *request) error {
	c.mu.Lock()
	sub := c.subs[req.Sub]
	delete(c.subs, req.Sub)
	c.mu.Unlock()
	if sub == nil {
		return errdefs.New(errdefs.NotFound, "no subscription %q on this connection", req.Sub)
	}
	c.stopSub(sub)
	c.writeJSON(reply{Op: "ok", ID: req.ID, Sub: req.Sub})
	return nil
}

func (c *conn) ack(req *request) error {
	c.mu.Lock()
	p, ok := c.pending[req.Ack]
	delete(c.pending, req.Ack)
	c.mu.Unlock()
	if !ok {
		if req.ID == "" {
			return nil // a stale fire-and-forget ack, e.g. from before a reconnect
		}
		return errdefs.New(errdefs.NotFound, "unknown ack token %q (already settled, or from an earlier connection)", req.Ack)
	}
	op := ackAck
	if req.Op == "nak" {
		op = ackNak
	}
	if err := c.s.settle(p.m, op); err != nil {
		return errdefs.Wrap(errdefs.Unavailable, fmt.Errorf("%s message: %w", req.Op, err))
	}
	if req.ID != "" {
		c.writeJSON(reply{Op: "ok", ID: req.ID})
	}
	return nil
}

// stopSub ends a subscription and returns its unacknowledged messages.
// For a durable one the pull inbox is gone from the server before anything
// is returned, so returned messages cannot be redelivered into the void.
func (c *conn) stopSub(sub *subscription) {
	sub.once.Do(func() {
		if sub.ns != nil {
			_ = sub.ns.Unsubscribe()
			if sub.durable {
				_ = c.s.nc.FlushTimeout(5 * time.Second)
			}
		}
		close(sub.done)
		sub.c.subscribers.Add(-1)
		c.mu.Lock()
		for tok, p := range c.pending {
			if p.sub == sub {
				c.s.settle(p.m, ackNak)
				delete(c.pending, tok)
			}
		}
		c.mu.Unlock()
	})
}

// pumpCore moves a non-durable subscription's buffered messages to the
// socket. The NATS handler never blocks: when the buffer is full it drops.
func (c *conn) pumpCore(sub *subscription) {
	defer c.wg.Done()
	var buf []byte
	for {
		select {
		case <-sub.done:
			return
		case m := <-sub.q:
			e := decodeEnvelope(m)
			buf = appendMessageLine(buf[:0], sub.id, sub.channel, &e, 0, "", false)
			if err := c.write(buf, len(sub.q) == 0); err != nil {
				_ = c.nc.Close()
				return
			}
			sub.c.delivered.Add(1)
		}
	}
}

func pullBatch(cfg Config) int { return min(64, cfg.MaxAckPending) }

// JetStream acknowledgement bodies.
var (
	ackAck      = []byte("+ACK")
	ackNak      = []byte("-NAK")
	ackProgress = []byte("+WPI")
)

// settle acknowledges, returns or extends a JetStream delivery.
func (s *Server) settle(m *nats.Msg, op []byte) error {
	return s.nc.Publish(m.Reply, op)
}

// pumpDurable pulls a durable subscription's messages from its consumer,
// one batch request at a time. The consumer's MaxAckPending bounds what
// is in flight; a slow reader only holds up its own pulls.
func (c *conn) pumpDurable(sub *subscription, project string) {
	defer c.wg.Done()
	defer func() { // return what was pulled but not handed over
		for {
			select {
			case m := <-sub.q:
				if !isStatus(m) {
					c.s.settle(m, ackNak)
				}
			default:
				return
			}
		}
	}()
	next := "$JS.API.CONSUMER.MSG.NEXT." + streamName(project, sub.channel) + "." + consumerName(c.a.id.Agent)
	batch := pullBatch(c.s.cfg)
	const expires = 5 * time.Second // short, so a request the server dropped silently costs little
	req := []byte(fmt.Sprintf(`{"batch":%d,"expires":%d}`, batch, expires.Nanoseconds()))
	outstanding := 0
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var buf []byte
	for {
		if outstanding == 0 {
			if err := c.s.nc.PublishRequest(next, sub.ns.Subject, req); err != nil {
				c.log.Debug("bus durable pull", "channel", sub.channel, logkey.Err, err)
				select {
				case <-sub.done:
					return
				case <-time.After(time.Second):
				}
				continue
			}
			outstanding = batch
			timer.Reset(expires + time.Second)
		}
		select {
		case <-sub.done:
			return
		case <-timer.C:
			outstanding = 0 // the request expired without a word
		case m := <-sub.q:
			if isStatus(m) {
				// 408 request expired, 409 request ended (e.g. consumer
				// changed), 404 nothing now; 100 is a heartbeat.
				switch m.Header.Get("Status") {
				case "100":
				case "408", "404":
					outstanding = 0
				default:
					outstanding = 0
					c.log.Debug("bus durable pull ended", "channel", sub.channel, "status", m.Header.Get("Status"), "desc", m.Header.Get("Description"))
					select {
					case <-sub.done:
						return
					case <-time.After(100 * time.Millisecond):
					}
				}
				continue
			}
			outstanding--
			tok := c.track(sub, m)
			if tok == "" {
				c.s.settle(m, ackNak)
				continue
			}
			e := decodeEnvelope(m)
			delivered, seq := ackMetadata(m.Reply)
			buf = appendMessageLine(buf[:0], sub.id, sub.channel, &e, seq, tok, delivered > 1)
			if err := c.write(buf, len(sub.q) == 0); err != nil {
				_ = c.nc.Close()
				return
			}
			sub.c.delivered.Add(1)
		}
	}
}

// isStatus reports a JetStream status message (no payload, a Status header).
func isStatus(m *nats.Msg) bool {
	return len(m.Data) == 0 && m.Header.Get("Status") != ""
}

// ackMetadata reads the delivery count and stream sequence from a
// JetStream ack subject: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>...
// or, with domain and account, $JS.ACK.<domain>.<acc>.<stream>....
func ackMetadata(reply string) (delivered, seq uint64) {
	toks := strings.Split(reply, ".")
	i := 4
	if len(toks) >= 12 {
		i = 6
	}
	if len(toks) < i+2 || toks[0] != "$JS" || toks[1] != "ACK" {
		return 0, 0
	}
	delivered, _ = strconv.ParseUint(toks[i], 10, 64)
	seq, _ = strconv.ParseUint(toks[i+1], 10, 64)
	return delivered, seq
}

// track registers a delivered durable message and returns its ack token,
// or "" when the subscription or connection is ending.
func (c *conn) track(sub *subscription, m *nats.Msg) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-sub.done:
		return ""
	default:
	}
	if c.closing {
		return ""
	}
	c.nextAck++
	tok := strconv.FormatUint(c.nextAck, 10)
	c.pending[tok] = pendingMsg{sub: sub, m: m}
	return tok
}

// keepAlive tells the store that messages held by this live connection
// are still being worked on, so they are not redelivered elsewhere.
func (c *conn) keepAlive() {
	defer c.wg.Done()
	t := time.NewTicker(c.s.cfg.AckWait / 3)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.mu.Lock()
			for _, p := range c.pending {
				c.s.settle(p.m, ackProgress)
			}
			c.mu.Unlock()
		}
	}
}
