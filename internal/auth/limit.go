package auth

import (
	"container/list"
	"math"
	"sync"
	"time"

	"github.com/cortexrt/cortex/internal/config"
	"golang.org/x/time/rate"
)

// Limiter holds a token bucket (golang.org/x/time/rate) per identity,
// sized by the identity's role, and one per client address for requests
// that fail authentication. It keeps at most max buckets, forgetting the
// least recently used (a forgotten identity starts again with a full
// bucket).
type Limiter struct {
	cfg config.RateLimits
	max int

	mu  sync.Mutex
	lru *list.List // of *bucket, most recent at the front
	m   map[string]*list.Element
}

type bucket struct {
	key string
	rl  config.RateLimit
	lim *rate.Limiter
}

// NewLimiter makes a limiter set.
func NewLimiter(cfg config.RateLimits, max int) *Limiter {
	if max < 1 {
		max = 1
	}
	return &Limiter{cfg: cfg, max: max, lru: list.New(), m: map[string]*list.Element{}}
}

// ForRole is a role's bucket setting.
func (l *Limiter) ForRole(r Role) config.RateLimit {
	switch r {
	case Admin:
		return l.cfg.Admin
	case Operator:
		return l.cfg.Operator
	case Viewer:
		return l.cfg.Viewer
	}
	return l.cfg.Unauthenticated
}

// Unauthenticated is the per-address setting for failed authentication.
func (l *Limiter) Unauthenticated() config.RateLimit { return l.cfg.Unauthenticated }

// Allow takes a token from key's bucket (made with rl when new, or when
// rl changed). It returns false and how long to wait when there is none.
func (l *Limiter) Allow(key string, rl config.RateLimit, now time.Time) (bool, time.Duration) {
	if rl.Rate <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var b *bucket
	if e, ok := l.m[key]; ok {
		b = e.Value.(*bucket)
		l.lru.MoveToFront(e)
		if b.rl != rl {
			b.rl, b.lim = rl, rate.NewLimiter(rate.Limit(rl.Rate), rl.Burst)
		}
	} else {
		b = &bucket{key: key, rl: rl, lim: rate.NewLimiter(rate.Limit(rl.Rate), rl.Burst)}
		l.m[key] = l.lru.PushFront(b)
		for l.lru.Len() > l.max {
			old := l.lru.Back()
			l.lru.Remove(old)
			delete(l.m, old.Value.(*bucket).key)
		}
	}
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Len is the number of buckets kept.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

// retryAfter is the Retry-After value (whole seconds, at least 1).
func retryAfter(d time.Duration) int {
	return int(math.Max(1, math.Ceil(d.Seconds())))
}
