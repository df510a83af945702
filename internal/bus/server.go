package bus

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/events"
	"github.com/cortexrt/cortex/internal/logkey"
)

// Identity is who is on an agent socket. The daemon decides it; nothing an
// agent sends can change it.
type Identity struct {
	Project string
	Agent   string
}

// Policy is an agent's bus capabilities from the manifest. Publish and
// Subscribe are channel patterns (a name, '*' for one dot-separated part,
// a final '>' for the rest); nil allows every channel of the project, an
// empty non-nil list none. Durable lists channels (exact names) stored
// with JetStream; durability is a property of the channel in the project,
// so one agent declaring it makes it durable for all.
type Policy struct {
	Publish   []string
	Subscribe []string
	Durable   []string
}

// Message is one message as seen by an operator subscriber.
type Message struct {
	Project string          `json:"project"`
	Channel string          `json:"channel"`
	ID      string          `json:"id"`
	From    string          `json:"from"` // sending agent; "" for operator publishes
	Node    string          `json:"node"` // node id of the daemon it entered on
	Time    time.Time       `json:"time"`
	Payload json.RawMessage `json:"payload"`
}

// ErrPayloadTooLarge is in the chain of the error for a payload over
// Config.MaxPayload.
var ErrPayloadTooLarge = errors.New("payload too large")

// NATS headers carrying a message's metadata.
const (
	hdrFrom = "Cortex-From"
	hdrID   = "Cortex-Id"
	hdrTime = "Cortex-Time" // unix nanoseconds
	hdrNode = "Cortex-Node" // node the message entered on (bridge echo suppression)
)

// lineOverhead is the room a protocol line needs besides its payload.
const lineOverhead = 16 << 10

// Server is the bus. It is safe for concurrent use.
type Server struct {
	cfg    Config
	events atomic.Pointer[events.Stream]
	log    *slog.Logger
	node   string

	ns *server.Server
	nc *nats.Conn
	js jetstream.JetStream

	done chan struct{} // closed by Close; stops every goroutine below
	wg   sync.WaitGroup

	mu       sync.RWMutex
	closed   bool
	durable  map[chanKey]bool
	counters map[chanKey]*counters
	channels map[string]int // counters per project
	atts     map[*agentSocket]struct{}
	bridges  map[string]*bridge
}

type chanKey struct{ project, channel string }

type counters struct {
	published, delivered, dropped atomic.Uint64
	subscribers                   atomic.Int64
}

// jsMaxStore is JetStream's store limit: large enough that reservations
// never refuse a durable channel (see New).
const jsMaxStore = 1 << 60

// Config is the daemon config's bus section, which the bus consumes.
type Config = config.Bus

// New starts the embedded NATS server with JetStream stored under
// storeDir (created if missing) and connects to it in-process. ctx bounds
// start-up only. Close releases everything.
func New(ctx context.Context, cfg Config, storeDir string, logger *slog.Logger) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, errdefs.Wrap(errdefs.InvalidArgument, err)
	}
	if storeDir == "" {
		return nil, errdefs.New(errdefs.InvalidArgument, "bus store directory is empty")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With(logkey.Subsystem, "bus")
	if err := os.MkdirAll(storeDir, 0o700); err != nil {
		return nil, fmt.Errorf("create bus store %s: %w", storeDir, err)
	}
	node, err := loadNodeID(storeDir, cfg.NodeID)
	if err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName: "cortexd-" + node,
		DontListen: true,
		JetStream:  true,
		StoreDir:   storeDir,
		// JetStream reserves each stream's MaxBytes (durable_max_bytes,
		// 1 GiB by default) against a store limit of 75% of the disk that
		// is free at start: on a small disk, or with enough durable
		// channels, creating one failed ("insufficient storage
		// resources") and the agents declaring it could not start. Each
		// channel is bounded by its own MaxBytes (oldest dropped); the
		// disk bounds the sum, and a full disk fails the publish that
		// meets it.
		JetStreamMaxStore: jsMaxStore,
		MaxPayload:        int32(cfg.MaxPayload + lineOverhead),
		NoSigs:            true,
	}
	if cfg.Listen != "" {
		host, port, _ := net.SplitHostPort(cfg.Listen)
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, errdefs.New(errdefs.InvalidArgument, "bus.listen: %q has no numeric port", cfg.Listen)
		}
		opts.DontListen, opts.Host, opts.Port = false, host, p
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("configure embedded nats: %w", err)
	}
	ns.SetLoggerV2(natsLogger{logger}, false, false, false)
	ns.Start()
	wait := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		wait = time.Until(dl)
	}
	if !ns.ReadyForConnections(wait) || !ns.JetStreamEnabled() {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, errdefs.New(errdefs.Unavailable, "embedded nats server with store %s did not become ready", storeDir)
	}
	s := &Server{
		cfg:      cfg,
		log:      logger,
		node:     node,
		ns:       ns,
		done:     make(chan struct{}),
		durable:  map[chanKey]bool{},
		counters: map[chanKey]*counters{},
		channels: map[string]int{},
		atts:     map[*agentSocket]struct{}{},
		bridges:  map[string]*bridge{},
	}
	s.nc, err = nats.Connect("", nats.InProcessServer(ns), nats.Name("cortexd-bus"), nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			logger.Warn("bus internal connection error", "subject", subj, logkey.Err, err)
		}))
	if err != nil {
		s.shutdownNATS()
		return nil, fmt.Errorf("connect to embedded nats: %w", err)
	}
	s.js, err = jetstream.New(s.nc)
	if err != nil {
		s.shutdownNATS()
		return nil, fmt.Errorf("open jetstream: %w", err)
	}
	if err := s.loadDurable(ctx); err != nil {
		s.shutdownNATS()
		return nil, err
	}
	logger.Info("bus started", "node", node, "store", storeDir, "listen", cfg.Listen, "durable_channels", len(s.durable))
	return s, nil
}

// NodeID is this server's node id, as used by broker bridges.
func (s *Server) NodeID() string { return s.node }

// Config is the configuration in force (defaults applied).
func (s *Server) Config() Config { return s.cfg }

// Close detaches every agent (their unacknowledged durable messages are
// returned to the store for redelivery), stops bridges and operator
// subscriptions and shuts the embedded server down. It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	atts := make([]*agentSocket, 0, len(s.atts))
	for a := range s.atts {
		atts = append(atts, a)
	}
	bridges := s.bridges
	s.bridges = map[string]*bridge{}
	s.mu.Unlock()

	for _, a := range atts {
		a.Close()
	}
	for _, b := range bridges {
		b.stop()
	}
	close(s.done)
	s.wg.Wait()
	s.shutdownNATS()
	s.log.Info("bus stopped")
	return nil
}

func (s *Server) shutdownNATS() {
	if s.nc != nil {
		_ = s.nc.Flush()
		s.nc.Close()
	}
	if s.ns != nil { // nil for NewRemote
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	}
}

func (s *Server) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

func loadNodeID(dir, configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	path := filepath.Join(dir, "node-id")
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if config.ValidNodeID(id) {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read bus node id: %w", err)
	}
	var r [8]byte
	_, _ = rand.Read(r[:])
	id := "n" + hex.EncodeToString(r[:])
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write bus node id: %w", err)
	}
	return id, nil
}

// newID returns a fresh message id.
func newID() string {
	var r [12]byte
	_, _ = rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

// counter returns a channel's counters, creating them within the
// project's channel limit.
func (s *Server) counter(project, channel string) (*counters, error) {
	k := chanKey{project, channel}
	s.mu.RLock()
	c := s.counters[k]
	s.mu.RUnlock()
	if c != nil {
		return c, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c = s.counters[k]; c == nil {
		if s.channels[project] >= s.cfg.MaxChannelsPerProject {
			return nil, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument,
				"project %q already uses %d channels, the bus limit", project, s.cfg.MaxChannelsPerProject),
				"reuse channel names (put varying parts in the payload) or raise bus.max_channels_per_project")
		}
		c = &counters{}
		s.counters[k] = c
		s.channels[project]++
	}
	return c, nil
}

func (s *Server) isDurable(project, channel string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.durable[chanKey{project, channel}]
}

// Stream metadata keys naming a durable channel's project and channel.
const (
	mdProject = "cortex.project"
	mdChannel = "cortex.channel"
)

// loadDurable learns the durable channels already in the store.
func (s *Server) loadDurable(ctx context.Context) error {
	l := s.js.ListStreams(ctx)
	for info := range l.Info() {
		p, c := info.Config.Metadata[mdProject], info.Config.Metadata[mdChannel]
		if p != "" && c != "" && streamName(p, c) == info.Config.Name {
			s.durable[chanKey{p, c}] = true
		}
	}
	if err := l.Err(); err != nil {
		return fmt.Errorf("list durable channels: %w", err)
	}
	return nil
}

// RemoveProject forgets a removed project: its broker bridge stops, its
// durable channels are deleted with their stored messages and every
// agent's cursor, and its counters go, so a later project of the same
// name (perhaps another user's) starts with empty channels. Call it once
// the project's agents are detached.
func (s *Server) RemoveProject(ctx context.Context, project string) error {
	if err := s.SetBroker(ctx, project, ""); err != nil {
		return err
	}
	var names []string
	l := s.js.ListStreams(ctx)
	for info := range l.Info() {
		if info.Config.Metadata[mdProject] == project {
			names = append(names, info.Config.Name)
		}
	}
	if err := l.Err(); err != nil {
		return errdefs.Wrap(errdefs.Unavailable, fmt.Errorf("list durable channels of %s: %w", project, err))
	}
	for _, n := range names {
		if err := s.js.DeleteStream(ctx, n); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return errdefs.Wrap(errdefs.Unavailable, fmt.Errorf("delete durable channel of %s: %w", project, err))
		}
	}
	s.mu.Lock()
	for k := range s.durable {
		if k.project == project {
			delete(s.durable, k)
		}
	}
	for k := range s.counters {
		if k.project == project {
			delete(s.counters, k)
		}
	}
	delete(s.channels, project)
	s.mu.Unlock()
	return nil
}

// ensureDurable creates (or updates) the stream of a durable channel.
func (s *Server) ensureDurable(ctx context.Context, project, channel string) error {
	dup := 2 * time.Minute
	if s.cfg.DurableMaxAge > 0 && s.cfg.DurableMaxAge < dup {
		dup = s.cfg.DurableMaxAge
	}
	_, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        streamName(project, channel),
		Description: project + "/" + channel,
		Subjects:    []string{subject(project, channel)},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      s.cfg.DurableMaxAge,
		MaxBytes:    s.cfg.DurableMaxBytes,
		Duplicates:  dup,
		Metadata:    map[string]string{mdProject: project, mdChannel: channel},
	})
	if err != nil {
		return errdefs.Wrap(errdefs.Unavailable, fmt.Errorf("create durable channel %s/%s: %w", project, channel, err))
	}
	s.mu.Lock()
	s.durable[chanKey{project, channel}] = true
	s.mu.Unlock()
	return nil
}

// envelope is one message entering the bus.
type envelope struct {
	Project, Channel string
	From             string
	ID               string
	Node             string
	Time             time.Time
	Payload          []byte // a compact JSON object
}

// publish puts e on its channel: through JetStream (waiting until it is
// stored) for durable channels, as a plain NATS message otherwise. The
// returned sequence is the store's, 0 for non-durable channels.
func (s *Server) publish(ctx context.Context, e *envelope) (uint64, error) {
	m := &nats.Msg{Subject: subject(e.Project, e.Channel), Data: e.Payload, Header: nats.Header{
		hdrFrom: {e.From},
		hdrID:   {e.ID},
		hdrTime: {strconv.FormatInt(e.Time.UnixNano(), 10)},
		hdrNode: {e.Node},
	}}
	c, err := s.counter(e.Project, e.Channel)
	if err != nil {
		return 0, err
	}
	var seq uint64
	if s.isDurable(e.Project, e.Channel) {
		m.Header.Set(jetstream.MsgIDHeader, e.ID)
		ack, err := s.js.PublishMsg(ctx, m)
		if err != nil {
			return 0, errdefs.Wrap(errdefs.Unavailable, fmt.Errorf("store message on %s: %w", e.Channel, err))
		}
		seq = ack.Sequence
	} else if err := s.nc.PublishMsg(m); err != nil {
		return 0, errdefs.Wrap(errdefs.Unavailable, fmt.Errorf("publish on %s: %w", e.Channel, err))
	}
	c.published.Add(1)
	return seq, nil
}

// decodeEnvelope reads the metadata of a message received from NATS.
func decodeEnvelope(m *nats.Msg) envelope {
	e := envelope{
		From:    m.Header.Get(hdrFrom),
		ID:      m.Header.Get(hdrID),
		Node:    m.Header.Get(hdrNode),
		Payload: m.Data,
	}
	e.Project, e.Channel, _ = splitSubject(m.Subject)
	if ns, err := strconv.ParseInt(m.Header.Get(hdrTime), 10, 64); err == nil {
		e.Time = time.Unix(0, ns).UTC()
	}
	return e
}

// checkPayload validates a payload and returns it compact (on one line).
// trusted skips the JSON syntax check for bytes a JSON decoder already
// accepted.
func (s *Server) checkPayload(p []byte, trusted bool) ([]byte, error) {
	p = bytes.TrimSpace(p)
	if len(p) == 0 || bytes.Equal(p, []byte("null")) {
		return nil, errdefs.New(errdefs.InvalidArgument, "payload is missing; send a JSON object")
	}
	if int64(len(p)) > s.cfg.MaxPayload {
		return nil, &errdefs.Error{Cat: errdefs.InvalidArgument, Err: ErrPayloadTooLarge,
			Msg:  fmt.Sprintf("payload is %d bytes, over the bus limit of %d", len(p), s.cfg.MaxPayload),
			Hint: "send a reference (a file path or URL) instead of the data, or raise bus.max_payload in the daemon config"}
	}
	if p[0] != '{' {
		return nil, errdefs.New(errdefs.InvalidArgument, "payload must be a JSON object, not %s", jsonKind(p[0]))
	}
	if !utf8.Valid(p) {
		return nil, errdefs.New(errdefs.InvalidArgument, "payload is not valid UTF-8")
	}
	if !trusted || bytes.ContainsAny(p, "\r\n") {
		var b bytes.Buffer
		if err := json.Compact(&b, p); err != nil {
			return nil, errdefs.New(errdefs.InvalidArgument, "payload is not valid JSON: %v", err)
		}
		p = b.Bytes()
	}
	return p, nil
}

func jsonKind(c byte) string {
	switch {
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == '-' || c >= '0' && c <= '9':
		return "a number"
	}
	return "valid JSON"
}

// Publish sends payload (a JSON object) to a project's channel as an
// operator (the message's From is empty). For a durable channel it returns
// once the message is stored.
func (s *Server) Publish(ctx context.Context, project, channel string, payload json.RawMessage) error {
	_, err := s.publishOperator(ctx, project, channel, payload)
	return err
}

func (s *Server) publishOperator(ctx context.Context, project, channel string, payload []byte) (string, error) {
	if err := validName("project", project); err != nil {
		return "", err
	}
	if err := ValidChannel(channel); err != nil {
		return "", err
	}
	p, err := s.checkPayload(payload, false)
	if err != nil {
		return "", err
	}
	if s.isClosed() {
		return "", errdefs.New(errdefs.Unavailable, "bus is closed")
	}
	e := &envelope{Project: project, Channel: channel, ID: newID(), Node: s.node, Time: time.Now().UTC(), Payload: p}
	_, err = s.publish(ctx, e)
	return e.ID, err
}

// Subscribe follows a project's channel as an operator: live messages
// only, also on durable channels (nothing is acknowledged). The channel is
// buffered (Config.SubscriberBuffer); when the reader falls behind, newer
// messages are dropped and counted. It is closed when ctx ends or the
// server closes.
func (s *Server) Subscribe(ctx context.Context, project, channel string) (<-chan Message, error) {
	if err := validName("project", project); err != nil {
		return nil, err
	}
	if err := ValidChannel(channel); err != nil {
		return nil, err
	}
	if s.isClosed() {
		return nil, errdefs.New(errdefs.Unavailable, "bus is closed")
	}
	c, err := s.counter(project, channel)
	if err != nil {
		return nil, err
	}
	out := make(chan Message, s.cfg.SubscriberBuffer)
	var mu sync.Mutex
	stopped := false
	sub, err := s.nc.Subscribe(subject(project, channel), func(m *nats.Msg) {
		e := decodeEnvelope(m)
		msg := Message{Project: project, Channel: channel, ID: e.ID, From: e.From, Node: e.Node, Time: e.Time, Payload: e.Payload}
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		select {
		case out <- msg:
			c.delivered.Add(1)
		default:
			c.dropped.Add(1)
		}
	})
	if err != nil {
		return nil, errdefs.Wrap(errdefs.Unavailable, fmt.Errorf("subscribe to %s: %w", channel, err))
	}
	// The subscription is registered once the server has seen it, so a
	// publish right after Subscribe returns is not missed.
	if err := s.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, errdefs.Wrap(errdefs.Unavailable, err)
	}
	c.subscribers.Add(1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-ctx.Done():
		case <-s.done:
		}
		_ = sub.Unsubscribe()
		mu.Lock()
		stopped = true
		close(out)
		mu.Unlock()
		c.subscribers.Add(-1)
	}()
	return out, nil
}

// Stats returns every channel's counters, sorted by project and channel.
func (s *Server) Stats() []api.BusChannelStats {
	s.mu.RLock()
	keys := map[chanKey]bool{}
	for k := range s.counters {
		keys[k] = true
	}
	for k := range s.durable {
		keys[k] = true
	}
	out := make([]api.BusChannelStats, 0, len(keys))
	for k := range keys {
		st := api.BusChannelStats{Project: k.project, Channel: k.channel, Durable: s.durable[k]}
		if c := s.counters[k]; c != nil {
			st.Published = c.published.Load()
			st.Delivered = c.delivered.Load()
			st.Dropped = c.dropped.Load()
			st.Subscribers = int(c.subscribers.Load())
		}
		out = append(out, st)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Project != out[j].Project {
			return out[i].Project < out[j].Project
		}
		return out[i].Channel < out[j].Channel
	})
	return out
}

// natsLogger sends the embedded server's log lines to slog.
type natsLogger struct{ l *slog.Logger }

func (n natsLogger) Noticef(f string, v ...any) { n.l.Debug(fmt.Sprintf(f, v...), "source", "nats") }
func (n natsLogger) Warnf(f string, v ...any)   { n.l.Warn(fmt.Sprintf(f, v...), "source", "nats") }
func (n natsLogger) Fatalf(f string, v ...any)  { n.l.Error(fmt.Sprintf(f, v...), "source", "nats") }
func (n natsLogger) Errorf(f string, v ...any)  { n.l.Error(fmt.Sprintf(f, v...), "source", "nats") }
func (n natsLogger) Debugf(f string, v ...any)  {}
func (n natsLogger) Tracef(f string, v ...any)  {}

// SetEvents makes the server report the operations it refuses an agent
// (a channel outside its bus.publish or bus.subscribe ACL) on ev.
func (s *Server) SetEvents(ev *events.Stream) { s.events.Store(ev) }

// deny reports a refused operation on the event stream.
func (s *Server) deny(id Identity, op, channel string) {
	if ev := s.events.Load(); ev != nil {
		ev.Emit(events.Event{Project: id.Project, Agent: id.Agent, Detail: events.BusDeniedDetail{Op: op, Channel: channel, Reason: "not in the agent's bus." + op + " capability"}})
	}
}
