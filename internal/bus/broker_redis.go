package bus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// redisBroker bridges through Redis Pub/Sub (PUBLISH / PSUBSCRIBE).
type redisBroker struct {
	c *redis.Client
}

var _ Broker = (*redisBroker)(nil)

func newRedisBroker(raw string) (*redisBroker, error) {
	opt, err := redis.ParseURL(raw)
	if err != nil {
		return nil, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "bus.broker %q: %v", redactURL(raw), err),
			"use redis://[:password@]host:6379[/db]")
	}
	opt.DialTimeout = 2 * time.Second
	opt.ReadTimeout = 3 * time.Second
	opt.WriteTimeout = 3 * time.Second
	opt.MaxRetries = -1 // the bridge retries with its own backoff
	opt.PoolSize = 4
	opt.DisableIdentity = true
	return &redisBroker{c: redis.NewClient(opt)}, nil
}

func (r *redisBroker) Publish(ctx context.Context, subject string, data []byte) error {
	return r.c.Publish(ctx, subject, data).Err()
}

func (r *redisBroker) Run(ctx context.Context, prefix string, deliver func(string, []byte), state func(bool, error)) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := r.session(ctx, prefix+"*", deliver, state, &backoff)
		if ctx.Err() != nil {
			return
		}
		state(false, err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// session subscribes once and receives until the connection fails.
func (r *redisBroker) session(ctx context.Context, pattern string, deliver func(string, []byte), state func(bool, error), backoff *time.Duration) error {
	ps := r.c.PSubscribe(ctx, pattern)
	defer ps.Close()
	// Blocking reads do not watch ctx; closing the PubSub ends them.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	if _, err := ps.Receive(ctx); err != nil { // the subscription confirmation
		return fmt.Errorf("psubscribe %s: %w", pattern, err)
	}
	state(true, nil)
	*backoff = 100 * time.Millisecond
	for {
		msg, err := ps.ReceiveTimeout(ctx, 10*time.Second)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if err := ps.Ping(ctx); err != nil {
					return fmt.Errorf("ping: %w", err)
				}
				continue
			}
			return err
		}
		if m, ok := msg.(*redis.Message); ok {
			deliver(m.Channel, []byte(m.Payload))
		}
	}
}

func (r *redisBroker) Close() error { return r.c.Close() }
