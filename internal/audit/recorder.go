package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/cortexrt/cortex/internal/events"
)

// recorded are the event types the audit log keeps one entry each for:
// the lifecycle facts the daemon causes. api.request is not among them:
// the API appends its own entries, before it answers.
var recorded = map[events.Type]bool{
	events.AgentState:      true,
	events.AgentOOM:        true,
	events.AgentRestart:    true,
	events.DaemonStart:     true,
	events.DaemonStop:      true,
	events.Ops:             true,
	events.Alert:           true,
	events.SecurityAnomaly: true,
}

// summarised are refusals an agent can cause at will: the log keeps one
// summary per agent, kind and target per window, with the count, so a
// flood of them cannot flood the log.
var summarised = map[events.Type]bool{
	events.EgressDenied: true,
	events.BusDenied:    true,
	events.LLMDenied:    true,
	events.FSDenied:     true,
}

// Recorder appends the daemon's lifecycle events to a Log. It taps the
// stream (the tap only queues, never blocks); Run does the appending.
type Recorder struct {
	log    *Log
	stream *events.Stream
	window time.Duration
	logger *slog.Logger
	ch     chan events.Event

	dropped      atomic.Uint64
	reported     uint64
	agg          map[string]*summary
	lastAnomaly  time.Time
	now          func() time.Time
	maxSummaries int
}

type summary struct {
	first events.Event
	count int
	last  time.Time
}

// NewRecorder taps s for l. window is how long denials are summed before
// their summary is written.
func NewRecorder(l *Log, s *events.Stream, window time.Duration, logger *slog.Logger) *Recorder {
	if logger == nil {
		logger = slog.Default()
	}
	r := &Recorder{log: l, stream: s, window: window, logger: logger, ch: make(chan events.Event, 8192),
		agg: map[string]*summary{}, now: time.Now, maxSummaries: 10000}
	s.Tap(r.tap)
	return r
}

func (r *Recorder) tap(e events.Event) {
	if !recorded[e.Type] && !summarised[e.Type] {
		return
	}
	select {
	case r.ch <- e:
	default:
		r.dropped.Add(1)
	}
}

// Run appends queued events until ctx is done, then appends what is
// still queued and every pending summary.
func (r *Recorder) Run(ctx context.Context) {
	tick := time.NewTicker(r.window / 2)
	defer tick.Stop()
	for {
		select {
		case e := <-r.ch:
			r.handle(e)
		case <-tick.C:
			r.flush(false)
			r.reportDrops()
		case <-ctx.Done():
			for {
				select {
				case e := <-r.ch:
					r.handle(e)
					continue
				default:
				}
				break
			}
			r.flush(true)
			r.reportDrops()
			return
		}
	}
}

func (r *Recorder) handle(e events.Event) {
	if summarised[e.Type] {
		k := summaryKey(e)
		if s, ok := r.agg[k]; ok {
			s.count++
			s.last = e.Time
			return
		}
		r.agg[k] = &summary{first: e, count: 1, last: e.Time}
		if len(r.agg) > r.maxSummaries {
			r.flush(true)
		}
		return
	}
	r.append(e, 0, time.Time{})
}

// flush writes the summaries whose window has passed (all with force).
func (r *Recorder) flush(force bool) {
	now := r.now()
	for k, s := range r.agg {
		if force || now.Sub(s.first.Time) >= r.window {
			r.append(s.first, s.count, s.last)
			delete(r.agg, k)
		}
	}
}

func (r *Recorder) append(e events.Event, count int, last time.Time) {
	detail, err := json.Marshal(e.Detail)
	if err != nil || string(detail) == "null" {
		detail = nil
	}
	rec := &EventRecord{Type: string(e.Type), Seq: e.Seq, Project: e.Project, Agent: e.Agent, Run: e.Run, Detail: detail}
	if count > 0 {
		rec.Count, rec.First, rec.Last = count, e.Time.UTC(), last.UTC()
	}
	if _, err := r.log.Append(Entry{Kind: KindEvent, Event: rec}); err != nil {
		r.logger.Error("audit: record event", "type", e.Type, "err", err)
		r.anomaly(events.AnomalyAuditFailure, "an event could not be written to the audit log: "+err.Error(), 0)
	}
}

func (r *Recorder) reportDrops() {
	n := r.dropped.Load()
	if n == r.reported {
		return
	}
	lost := n - r.reported
	r.reported = n
	msg := strconv.FormatUint(lost, 10) + " lifecycle events were not recorded: they arrived faster than the audit log could write them"
	if _, err := r.log.Append(Entry{Kind: KindNotice, Notice: msg}); err != nil {
		r.logger.Error("audit: record dropped events", "err", err)
	}
	r.anomaly(events.AnomalyAuditDropped, msg, int(lost))
}

// anomaly emits a security.anomaly event, at most one every 10 seconds
// (the recorder taps what it emits).
func (r *Recorder) anomaly(kind, msg string, count int) {
	now := r.now()
	if now.Sub(r.lastAnomaly) < 10*time.Second {
		return
	}
	r.lastAnomaly = now
	r.stream.Emit(events.Event{Type: events.SecurityAnomaly, Detail: events.SecurityAnomalyDetail{Kind: kind, Count: count, Message: msg}})
}

// summaryKey groups denials by agent, type and what was refused.
func summaryKey(e events.Event) string {
	k := string(e.Type) + "\x00" + e.Project + "\x00" + e.Agent + "\x00"
	switch d := e.Detail.(type) {
	case events.EgressDeniedDetail:
		k += fmt.Sprintf("%s\x00%s\x00%s\x00%d\x00%s", d.Protocol, d.Host, d.Addr, d.Port, d.Reason)
	case events.BusDeniedDetail:
		k += d.Op + "\x00" + d.Channel + "\x00" + d.Reason
	case events.LLMDeniedDetail:
		k += d.Alias + "\x00" + d.Reason
	case events.FSDeniedDetail:
		k += d.Access + "\x00" + d.Path
	}
	return k
}
