package llm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/llm/canon"
	"github.com/cortexrt/cortex/internal/logkey"
)

// health is what the router knows about one provider/model, shared by
// every alias that routes to it.
type health struct {
	mu        sync.Mutex
	coolUntil time.Time
	fails     int
	ttft      time.Duration // moving average of time to first token
	samples   int
}

func (h *health) cooling(now time.Time) (bool, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return now.Before(h.coolUntil), h.coolUntil
}

func (h *health) success(ttft time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fails, h.coolUntil = 0, time.Time{}
	if h.samples == 0 {
		h.ttft = ttft
	} else {
		h.ttft = (h.ttft*4 + ttft) / 5
	}
	h.samples++
}

func (h *health) failure(now time.Time, cooldown time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fails++
	if cooldown > 0 {
		h.coolUntil = now.Add(cooldown)
	}
}

func (h *health) latency() (time.Duration, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ttft, h.samples > 0
}

// target is one provider/model of an alias, ready to call.
type target struct {
	prov    *canon.Provider
	conn    canon.Connector
	model   string
	weight  float64
	timeout time.Duration
	price   config.Price
	priced  bool
	health  *health
}

func (t *target) String() string { return t.prov.Name + "/" + t.model }

// route is a configured alias.
type route struct {
	name     string
	strategy string
	cache    bool
	retries  int
	targets  []*target
	// fingerprint names the targets; it is part of the cache key so
	// re-pointing an alias does not serve the old targets' answers.
	fingerprint string
}

// order returns the targets to try, in order: the strategy's order over
// the targets not cooling down, or, when all are cooling down, the one
// whose cooldown ends first.
func (rt *route) order(now time.Time, rnd func() float64) []*target {
	ts := make([]*target, 0, len(rt.targets))
	var coolest *target
	var coolestUntil time.Time
	for _, t := range rt.targets {
		if c, until := t.health.cooling(now); c {
			if coolest == nil || until.Before(coolestUntil) {
				coolest, coolestUntil = t, until
			}
			continue
		}
		ts = append(ts, t)
	}
	if len(ts) == 0 {
		return []*target{coolest}
	}
	switch rt.strategy {
	case config.StrategyWeighted:
		var sum float64
		for _, t := range ts {
			sum += t.weight
		}
		if sum > 0 {
			x := rnd() * sum
			for i, t := range ts {
				if x < t.weight || i == len(ts)-1 {
					copy(ts[1:i+1], ts[:i])
					ts[0] = t
					break
				}
				x -= t.weight
			}
		}
	case config.StrategyLowestLatency:
		// Unmeasured targets go first so every target gets measured.
		sort.SliceStable(ts, func(i, j int) bool {
			li, oki := ts[i].health.latency()
			lj, okj := ts[j].health.latency()
			if oki != okj {
				return !oki
			}
			return li < lj
		})
	case config.StrategyLowestCost:
		cost := func(t *target) float64 {
			if !t.priced {
				return math.Inf(1)
			}
			return t.price.Input + t.price.Output
		}
		sort.SliceStable(ts, func(i, j int) bool { return cost(ts[i]) < cost(ts[j]) })
	}
	return ts
}

// errAttemptTimeout is the cause given to an attempt's context when its
// target's timeout expires.
var errAttemptTimeout = errors.New("target timeout")

// opened is a stream committed to one target: its first events (up to and
// including the first token) are buffered in first; the rest come from
// stream. close must be called.
type opened struct {
	target   *target
	first    []canon.Event
	stream   canon.Stream
	upstream time.Duration // time spent waiting on upstreams, failed attempts included
	attempts int
	ctx      context.Context // the attempt's; its cause tells an idle timeout
	cancel   context.CancelCauseFunc
	timer    *time.Timer
	idle     time.Duration
}

// next returns the next event after the buffered ones, bounding the wait by
// the stream idle timeout.
func (o *opened) next() (canon.Event, error) {
	if len(o.first) > 0 {
		ev := o.first[0]
		o.first = o.first[1:]
		return ev, nil
	}
	if o.stream == nil {
		return canon.Event{}, io.EOF
	}
	o.timer.Reset(o.idle)
	ev, err := o.stream.Next()
	o.timer.Stop()
	if err != nil && errors.Is(context.Cause(o.ctx), errAttemptTimeout) {
		return ev, &canon.UpstreamError{Provider: o.target.prov.Name, Timeout: true, Message: fmt.Sprintf("no event within the stream idle timeout (%s)", o.idle)}
	}
	return ev, err
}

// more reports whether the next event is already at hand, so a writer can
// hold its flush and send both in one write.
func (o *opened) more() bool {
	if len(o.first) > 0 {
		return true
	}
	r, ok := o.stream.(interface{ ready() bool })
	return ok && r.ready()
}

func (o *opened) close() {
	if o.timer != nil {
		o.timer.Stop()
	}
	if o.stream != nil {
		o.stream.Close()
	}
	if o.cancel != nil {
		o.cancel(context.Canceled)
	}
}

// routeError is the outcome of a request no target could serve.
type routeError struct {
	status   int
	msg      string
	attempts int
}

func (e *routeError) Error() string { return e.msg }

// open sends req to the alias's targets in order until one produces a
// first token: retrying retryable errors with backoff, falling back to the
// next target (including when a stream fails before its first token), and
// putting failed targets in cooldown. An error the request itself caused
// is returned at once.
func (g *Gateway) open(ctx context.Context, rt *route, req *canon.Request) (*opened, error) {
	var failures []string
	attempts := 0
	var upstream, retryAfter time.Duration
	lastStatus := http.StatusBadGateway
	invalid := 0
	var invalidMsg string
	for _, t := range rt.order(g.now(), g.rnd) {
		for try := 0; ; try++ {
			if try > 0 {
				start := time.Now()
				if err := sleepCtx(ctx, g.backoff(try, retryAfter)); err != nil {
					return nil, err
				}
				upstream += time.Since(start)
			}
			attempts++
			start := time.Now()
			o, err := g.attempt(ctx, t, req)
			upstream += time.Since(start)
			if err == nil {
				t.health.success(time.Since(start))
				o.upstream, o.attempts = upstream, attempts
				return o, nil
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var ir *canon.InvalidRequest
			if errors.As(err, &ir) {
				invalid++
				invalidMsg = ir.Msg
				failures = append(failures, t.String()+": "+ir.Msg)
				break
			}
			var ue *canon.UpstreamError
			if !errors.As(err, &ue) {
				ue = &canon.UpstreamError{Provider: t.prov.Name, Message: err.Error()}
			}
			if errors.Is(ue.Err, canon.ErrUnsupported) {
				failures = append(failures, t.String()+": "+ue.Message)
				break
			}
			g.log.Warn("llm upstream attempt failed", "alias", rt.name, "target", t.String(), "try", try+1, logkey.Err, ue.Error())
			if ue.ClientFault() {
				return nil, &routeError{status: http.StatusBadRequest, msg: fmt.Sprintf("%s rejected the request: %s", t, ue.Message), attempts: attempts}
			}
			if ue.Timeout {
				lastStatus = http.StatusGatewayTimeout
			} else {
				lastStatus = http.StatusBadGateway
			}
			if ue.Retryable() && try < rt.retries {
				retryAfter = ue.RetryAfter
				continue
			}
			cd := g.cfg.Routing.Cooldown
			if ue.RetryAfter > cd {
				cd = ue.RetryAfter
			}
			t.health.failure(g.now(), cd)
			failures = append(failures, ue.Error())
			break
		}
	}
	if invalid > 0 && invalid == len(failures) {
		if invalid == 1 {
			return nil, &routeError{status: http.StatusBadRequest, msg: invalidMsg, attempts: attempts}
		}
		return nil, &routeError{status: http.StatusBadRequest, msg: "no target of alias " + rt.name + " can take this request: " + strings.Join(failures, "; "), attempts: attempts}
	}
	return nil, &routeError{status: lastStatus, msg: fmt.Sprintf("alias %s: no target answered (%d attempts): %s", rt.name, attempts, strings.Join(failures, "; ")), attempts: attempts}
}

// attempt makes one call to t and reads up to its first token.
func (g *Gateway) attempt(ctx context.Context, t *target, req *canon.Request) (*opened, error) {
	actx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(t.timeout, func() { cancel(errAttemptTimeout) })
	fail := func(err error) (*opened, error) {
		timer.Stop()
		cancel(context.Canceled)
		if errors.Is(context.Cause(actx), errAttemptTimeout) && ctx.Err() == nil {
			return nil, &canon.UpstreamError{Provider: t.prov.Name, Timeout: true, Err: err}
		}
		return nil, err
	}
	s, err := t.conn.Chat(actx, t.model, req)
	if err != nil {
		return fail(err)
	}
	var first []canon.Event
	for {
		ev, err := s.Next()
		if err != nil {
			s.Close()
			if errors.Is(err, io.EOF) {
				err = &canon.UpstreamError{Provider: t.prov.Name, Message: "upstream ended the answer without any content"}
			}
			return fail(err)
		}
		first = append(first, ev)
		if ev.IsToken() {
			break
		}
	}
	timer.Stop()
	return &opened{target: t, first: first, stream: s, ctx: actx, cancel: cancel, timer: timer, idle: g.cfg.Routing.StreamIdleTimeout}, nil
}

// backoff is the delay before retry number try (1-based): exponential from
// routing.backoff with ±20% jitter, capped at backoff_max; an upstream
// Retry-After within the cap wins.
func (g *Gateway) backoff(try int, retryAfter time.Duration) time.Duration {
	r := g.cfg.Routing
	if retryAfter > 0 && retryAfter <= r.BackoffMax {
		return retryAfter
	}
	d := r.Backoff << (try - 1)
	if d > r.BackoffMax || d <= 0 {
		d = r.BackoffMax
	}
	jitter := 0.8 + 0.4*g.rnd()
	return time.Duration(float64(d) * jitter)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// embed runs an embeddings request through the alias's targets with the
// same retry, fallback and cooldown rules as chat.
func (g *Gateway) embed(ctx context.Context, rt *route, req *canon.EmbedRequest) (*canon.EmbedResponse, *target, time.Duration, error) {
	var failures []string
	var upstream, retryAfter time.Duration
	lastStatus := http.StatusBadGateway
	attempts := 0
	for _, t := range rt.order(g.now(), g.rnd) {
		for try := 0; ; try++ {
			if try > 0 {
				start := time.Now()
				if err := sleepCtx(ctx, g.backoff(try, retryAfter)); err != nil {
					return nil, nil, upstream, err
				}
				upstream += time.Since(start)
			}
			attempts++
			start := time.Now()
			actx, cancel := context.WithTimeoutCause(ctx, t.timeout, errAttemptTimeout)
			res, err := t.conn.Embed(actx, t.model, req)
			cancel()
			upstream += time.Since(start)
			if err == nil {
				t.health.success(time.Since(start))
				return res, t, upstream, nil
			}
			if ctx.Err() != nil {
				return nil, nil, upstream, ctx.Err()
			}
			var ue *canon.UpstreamError
			if !errors.As(err, &ue) {
				ue = &canon.UpstreamError{Provider: t.prov.Name, Message: err.Error()}
			}
			if errors.Is(ue.Err, canon.ErrUnsupported) {
				failures = append(failures, t.String()+": "+ue.Message)
				break
			}
			if ue.ClientFault() {
				return nil, nil, upstream, &routeError{status: http.StatusBadRequest, msg: fmt.Sprintf("%s rejected the request: %s", t, ue.Message), attempts: attempts}
			}
			if ue.Timeout {
				lastStatus = http.StatusGatewayTimeout
			}
			if ue.Retryable() && try < rt.retries {
				retryAfter = ue.RetryAfter
				continue
			}
			t.health.failure(g.now(), g.cfg.Routing.Cooldown)
			failures = append(failures, ue.Error())
			break
		}
	}
	return nil, nil, upstream, &routeError{status: lastStatus, msg: fmt.Sprintf("alias %s: no target answered embeddings (%d attempts): %s", rt.name, attempts, strings.Join(failures, "; ")), attempts: attempts}
}
