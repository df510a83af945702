// Package events is the daemon's one in-process stream of typed facts:
// an agent changed state, was OOM-killed, was refused an egress
// connection, a bus channel or an LLM alias; an API request was decided;
// a repair ran. Each fact is emitted once, by the subsystem that knows
// it, and every consumer (cortex events and its SQLite retention, the
// audit log, Prometheus counters, alert rules, the console, run --learn,
// lifecycle hooks) subscribes here instead of being hooked into the
// emitting packages.
//
// Emit never blocks: a subscriber has a bounded buffer, and what does not
// fit is counted as dropped for that subscriber. Consumers that must see
// every event and are cheap (a counter) use Tap, which runs inline.
//
// The package is a leaf: it imports nothing of Cortex, and it must not
// do I/O.
package events

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Type names a kind of event; it is the "type" field on the wire and in
// the store. Types are stable: consumers and users match on them.
type Type string

// The event types. Each has one Detail type, named beside it.
const (
	// AgentState: an agent entered a lifecycle state (AgentStateDetail).
	AgentState Type = "agent.state"
	// AgentOOM: the kernel OOM-killed an agent (AgentOOMDetail).
	AgentOOM Type = "agent.oom"
	// AgentRestart: the supervisor schedules a restart (AgentRestartDetail).
	AgentRestart Type = "agent.restart"
	// EgressDenied: the egress gateway refused a connection or a DNS
	// name (EgressDeniedDetail).
	EgressDenied Type = "egress.denied"
	// EgressFailed: an allowed connection could not reach its upstream
	// (EgressFailedDetail).
	EgressFailed Type = "egress.failed"
	// BusDenied: the bus refused a publish or subscribe (BusDeniedDetail).
	BusDenied Type = "bus.denied"
	// LLMDenied: the LLM gateway refused a request: an alias the agent
	// may not use, or a budget (LLMDeniedDetail).
	LLMDenied Type = "llm.denied"
	// FSDenied: the kernel refused a filesystem access under the project
	// (FSDeniedDetail).
	FSDenied Type = "fs.denied"
	// APIRequest: the API decided a request (APIRequestDetail).
	APIRequest Type = "api.request"
	// DaemonStart, DaemonStop: cortexd started or stopped (DaemonDetail).
	DaemonStart Type = "daemon.start"
	DaemonStop  Type = "daemon.stop"
	// Ops: doctor, repair or update did something (OpsDetail).
	Ops Type = "ops"
	// Alert: an alert rule fired or resolved (AlertDetail).
	Alert Type = "alert"
	// SecurityAnomaly: the API or the audit log saw something an
	// operator should look at (SecurityAnomalyDetail).
	SecurityAnomaly Type = "security.anomaly"
)

// Event is one fact. Project and Agent are empty for daemon-wide events.
type Event struct {
	// Seq is assigned by Emit: strictly increasing within one daemon run.
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Type    Type      `json:"type"`
	Project string    `json:"project,omitempty"`
	Agent   string    `json:"agent,omitempty"`
	// Run is the agent's run number (0 for the first start).
	Run    int    `json:"run"`
	Detail Detail `json:"detail"`
}

// Detail is the typed part of an event. Every Detail type is registered
// with its Type so stored events decode back to the same Go type.
type Detail interface {
	// EventType names the Type this detail belongs to.
	EventType() Type
}

// AgentStateDetail: the state an agent entered and why.
type AgentStateDetail struct {
	State    string `json:"state"`
	Reason   string `json:"reason,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty"`
	// RestartPending: the agent ended and will be started again.
	RestartPending bool `json:"restart_pending,omitempty"`
}

// AgentOOMDetail: the memory the agent's cgroup held when it was killed.
type AgentOOMDetail struct {
	LimitBytes int64 `json:"limit_bytes"`
	// Usage by kind, in bytes (anon, file, kernel, sock, shmem), as far
	// as the cgroup version reports them.
	Usage map[string]int64 `json:"usage,omitempty"`
}

// AgentRestartDetail: a restart is scheduled after Delay.
type AgentRestartDetail struct {
	Delay    time.Duration `json:"delay_ns"`
	Restarts int           `json:"restarts"`
	Reason   string        `json:"reason,omitempty"`
}

// EgressDeniedDetail: what was refused and why.
type EgressDeniedDetail struct {
	// Protocol: "dns", "tcp", "udp", "http", "tls".
	Protocol string `json:"protocol"`
	// Host is the name asked for (DNS, SNI, Host header, proxy target);
	// empty for a literal address.
	Host string `json:"host,omitempty"`
	// Addr is the destination address, when one is known.
	Addr   string `json:"addr,omitempty"`
	Port   int    `json:"port,omitempty"`
	Reason string `json:"reason"`
	// PID and Comm name the process that tried, when known.
	PID  int    `json:"pid,omitempty"`
	Comm string `json:"comm,omitempty"`
	// TraceID and SpanID link the denial to a trace, when known.
	TraceID string `json:"trace_id,omitempty"`
	SpanID  string `json:"span_id,omitempty"`
}

// EgressFailedDetail: an allowed name could not be reached.
type EgressFailedDetail struct {
	Host string `json:"host"`
	Port int    `json:"port,omitempty"`
	// Kind: "dns", "refused", "timeout", "tls", "other".
	Kind  string `json:"kind"`
	Error string `json:"error"`
}

// BusDeniedDetail: a bus operation the agent's ACL does not allow.
type BusDeniedDetail struct {
	// Op: "publish" or "subscribe".
	Op      string `json:"op"`
	Channel string `json:"channel"`
	Reason  string `json:"reason,omitempty"`
}

// LLMDeniedDetail: an LLM request refused before reaching a provider.
type LLMDeniedDetail struct {
	Alias string `json:"alias,omitempty"`
	// Reason: "alias" (not granted), "budget", "unknown-alias", ...
	Reason string `json:"reason"`
	Detail string `json:"detail,omitempty"`
}

// FSDeniedDetail: a filesystem access refused by the kernel.
type FSDeniedDetail struct {
	// Path as the agent saw it (under /app).
	Path string `json:"path"`
	// Access: "read", "write", "exec", ...
	Access string `json:"access"`
	// Errno is the kernel's answer: ENOENT (not in the agent's view),
	// EACCES, EPERM, EROFS (a read-only mount), ENOTDIR.
	Errno string `json:"errno,omitempty"`
	// Parent: Path is the directory an entry was to be created or
	// removed in (the kernel named no more).
	Parent bool   `json:"parent,omitempty"`
	PID    int    `json:"pid,omitempty"`
	Comm   string `json:"comm,omitempty"`
}

// APIRequestDetail: one API request and its outcome.
type APIRequestDetail struct {
	Identity string `json:"identity"`
	Role     string `json:"role,omitempty"`
	Method   string `json:"method"`
	Route    string `json:"route"`
	Target   string `json:"target,omitempty"`
	Status   int    `json:"status"`
	Outcome  string `json:"outcome"`
	Remote   string `json:"remote,omitempty"`
}

// DaemonDetail: a daemon start or stop.
type DaemonDetail struct {
	Version string `json:"version,omitempty"`
	PID     int    `json:"pid,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// OpsDetail: an operations action (repair, update, rollback, hook).
type OpsDetail struct {
	Action  string `json:"action"`
	ID      string `json:"id,omitempty"`
	Outcome string `json:"outcome"`
	Message string `json:"message,omitempty"`
}

// AlertDetail: an alert rule changed state.
type AlertDetail struct {
	Name     string            `json:"name"`
	Status   string            `json:"status"` // "firing" or "resolved"
	Severity string            `json:"severity,omitempty"`
	Summary  string            `json:"summary,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// The kinds of SecurityAnomalyDetail.
const (
	// AnomalyDeniedBurst: many refused requests (403) from one identity
	// in a short window.
	AnomalyDeniedBurst = "denied-burst"
	// AnomalyNewAddress: an API key or client certificate was used from
	// an address it had not been used from before.
	AnomalyNewAddress = "new-address"
	// AnomalyAuditFailure: an audit append failed; the request it
	// recorded was refused.
	AnomalyAuditFailure = "audit-failure"
	// AnomalyAuditDropped: lifecycle events arrived faster than the audit
	// log could record them and some were lost (counted in the log).
	AnomalyAuditDropped = "audit-dropped"
	// AnomalyAuditDamaged: the audit log's newest segment did not verify
	// when the daemon opened it.
	AnomalyAuditDamaged = "audit-damaged"
)

// SecurityAnomalyDetail: what was seen, by whom, how often.
type SecurityAnomalyDetail struct {
	// Kind is one of the Anomaly* constants.
	Kind     string `json:"kind"`
	Identity string `json:"identity,omitempty"`
	Remote   string `json:"remote,omitempty"`
	// Count and Window: how many times within how long (bursts).
	Count   int           `json:"count,omitempty"`
	Window  time.Duration `json:"window_ns,omitempty"`
	Message string        `json:"message"`
}

func (AgentStateDetail) EventType() Type   { return AgentState }
func (AgentOOMDetail) EventType() Type     { return AgentOOM }
func (AgentRestartDetail) EventType() Type { return AgentRestart }
func (EgressDeniedDetail) EventType() Type { return EgressDenied }
func (EgressFailedDetail) EventType() Type { return EgressFailed }
func (BusDeniedDetail) EventType() Type    { return BusDenied }
func (LLMDeniedDetail) EventType() Type    { return LLMDenied }
func (FSDeniedDetail) EventType() Type     { return FSDenied }
func (APIRequestDetail) EventType() Type   { return APIRequest }
func (OpsDetail) EventType() Type          { return Ops }
func (AlertDetail) EventType() Type        { return Alert }
func (SecurityAnomalyDetail) EventType() Type {
	return SecurityAnomaly
}

// DaemonDetail serves two types; the event's Type says which.
func (DaemonDetail) EventType() Type { return DaemonStart }

// decoders map a Type to a function decoding its Detail.
var decoders = map[Type]func([]byte) (Detail, error){
	AgentState:   decodeAs[AgentStateDetail],
	AgentOOM:     decodeAs[AgentOOMDetail],
	AgentRestart: decodeAs[AgentRestartDetail],
	EgressDenied: decodeAs[EgressDeniedDetail],
	EgressFailed: decodeAs[EgressFailedDetail],
	BusDenied:    decodeAs[BusDeniedDetail],
	LLMDenied:    decodeAs[LLMDeniedDetail],
	FSDenied:     decodeAs[FSDeniedDetail],
	APIRequest:   decodeAs[APIRequestDetail],
	DaemonStart:  decodeAs[DaemonDetail],
	DaemonStop:   decodeAs[DaemonDetail],
	Ops:          decodeAs[OpsDetail],
	Alert:        decodeAs[AlertDetail],

	SecurityAnomaly: decodeAs[SecurityAnomalyDetail],
}

func decodeAs[T Detail](b []byte) (Detail, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// Types lists every known event type.
func Types() []Type {
	out := make([]Type, 0, len(decoders))
	for t := range decoders {
		out = append(out, t)
	}
	return out
}

// Known reports whether t is a known event type.
func Known(t Type) bool { _, ok := decoders[t]; return ok }

// UnmarshalJSON decodes an event, its Detail as the Go type of its Type.
// An unknown type keeps its detail as Raw.
func (e *Event) UnmarshalJSON(b []byte) error {
	type plain Event
	var w struct {
		plain
		Detail json.RawMessage `json:"detail"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*e = Event(w.plain)
	dec, ok := decoders[e.Type]
	if !ok {
		e.Detail = Raw(w.Detail)
		return nil
	}
	if len(w.Detail) == 0 || string(w.Detail) == "null" {
		e.Detail = nil
		return nil
	}
	d, err := dec(w.Detail)
	if err != nil {
		return fmt.Errorf("event %s: detail: %w", e.Type, err)
	}
	e.Detail = d
	return nil
}

// Raw is the detail of an event type this build does not know.
type Raw json.RawMessage

// EventType implements Detail.
func (Raw) EventType() Type { return "" }

// MarshalJSON writes the raw detail as is.
func (r Raw) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil
}

// Stream fans events out to subscribers. The zero value is not usable;
// call New. A Stream is safe for concurrent use.
type Stream struct {
	mu     sync.RWMutex
	seq    uint64
	subs   map[*Sub]struct{}
	taps   []func(Event)
	now    func() time.Time
	closed bool

	emitted atomic.Uint64
}

// New returns an empty stream.
func New() *Stream {
	return &Stream{subs: map[*Sub]struct{}{}, now: time.Now}
}

// Emit assigns e its sequence number (and its time, if unset) and hands
// it to every tap and every subscriber whose filter accepts it. It never
// blocks on a subscriber: a full buffer drops the event for that
// subscriber and counts the drop. Emit after Close does nothing.
func (s *Stream) Emit(e Event) {
	if e.Type == "" && e.Detail != nil {
		e.Type = e.Detail.EventType()
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.seq++
	e.Seq = s.seq
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	// Taps and deliveries run under the lock so that every consumer sees
	// events in Seq order.
	for _, tap := range s.taps {
		tap(e)
	}
	for sub := range s.subs {
		if sub.filter != nil && !sub.filter(e) {
			continue
		}
		select {
		case sub.ch <- e:
		default:
			sub.dropped.Add(1)
		}
	}
	s.mu.Unlock()
	s.emitted.Add(1)
}

// Tap calls fn inline for every event from now on, in Seq order. fn must
// be fast and must not call back into the stream. Taps live as long as
// the stream.
func (s *Stream) Tap(fn func(Event)) {
	s.mu.Lock()
	s.taps = append(s.taps, fn)
	s.mu.Unlock()
}

// Sub is one subscription: read C until it is closed (by Close of the
// Sub or of the Stream).
type Sub struct {
	C       <-chan Event
	ch      chan Event
	name    string
	filter  func(Event) bool
	stream  *Stream
	dropped atomic.Uint64
	once    sync.Once
}

// Subscribe returns a subscription with room for buffer events (at
// least 1). filter (may be nil) selects the events it wants; name
// identifies it in Stats.
func (s *Stream) Subscribe(name string, buffer int, filter func(Event) bool) *Sub {
	if buffer < 1 {
		buffer = 1
	}
	ch := make(chan Event, buffer)
	sub := &Sub{C: ch, ch: ch, name: name, filter: filter, stream: s}
	s.mu.Lock()
	if s.closed {
		close(ch)
	} else {
		s.subs[sub] = struct{}{}
	}
	s.mu.Unlock()
	return sub
}

// Dropped counts the events this subscriber missed because its buffer
// was full.
func (sub *Sub) Dropped() uint64 { return sub.dropped.Load() }

// Close ends the subscription and closes C. It is safe to call more than
// once and concurrently with Emit.
func (sub *Sub) Close() {
	sub.once.Do(func() {
		s := sub.stream
		s.mu.Lock()
		if _, ok := s.subs[sub]; ok {
			delete(s.subs, sub)
			close(sub.ch)
		}
		s.mu.Unlock()
	})
}

// Close ends every subscription; later Emits do nothing.
func (s *Stream) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	for sub := range s.subs {
		delete(s.subs, sub)
		close(sub.ch)
	}
}

// SubStats describes one subscriber.
type SubStats struct {
	Name     string `json:"name"`
	Buffered int    `json:"buffered"`
	Capacity int    `json:"capacity"`
	Dropped  uint64 `json:"dropped"`
}

// Stats lists the subscribers with their drop counters, and the number
// of events emitted so far.
func (s *Stream) Stats() (emitted uint64, subs []SubStats) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for sub := range s.subs {
		subs = append(subs, SubStats{Name: sub.name, Buffered: len(sub.ch), Capacity: cap(sub.ch), Dropped: sub.Dropped()})
	}
	return s.emitted.Load(), subs
}

// ForAgent is a filter for one project (agent "" = every agent of it;
// project "" = everything).
func ForAgent(project, agent string) func(Event) bool {
	if project == "" {
		return nil
	}
	return func(e Event) bool {
		return e.Project == project && (agent == "" || e.Agent == agent)
	}
}

// OfType is a filter for the listed types.
func OfType(types ...Type) func(Event) bool {
	set := map[Type]bool{}
	for _, t := range types {
		set[t] = true
	}
	return func(e Event) bool { return set[e.Type] }
}
