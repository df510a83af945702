package bus

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/logkey"
)

// natsBroker bridges through an external NATS server or cluster.
type natsBroker struct {
	nc    *nats.Conn
	state chan bool // connectivity changes from the client's callbacks
}

var _ Broker = (*natsBroker)(nil)

func newNATSBroker(raw string, log *slog.Logger) (*natsBroker, error) {
	b := &natsBroker{state: make(chan bool, 16)}
	note := func(up bool) {
		select {
		case b.state <- up:
		default:
		}
	}
	nc, err := nats.Connect(raw,
		nats.Name("cortexd-bridge"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.CustomReconnectDelay(func(attempts int) time.Duration {
			return min(time.Duration(attempts)*250*time.Millisecond, 5*time.Second)
		}),
		nats.Timeout(2*time.Second),
		nats.ConnectHandler(func(*nats.Conn) { note(true) }),
		nats.ReconnectHandler(func(*nats.Conn) { note(true) }),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { note(false) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("bus broker client error", logkey.Err, err)
		}),
	)
	if err != nil {
		return nil, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "bus.broker %q: %v", redactURL(raw), err),
			"use nats://host:4222")
	}
	b.nc = nc
	if nc.IsConnected() {
		note(true)
	}
	return b, nil
}

func (n *natsBroker) Publish(ctx context.Context, subject string, data []byte) error {
	// While reconnecting the client buffers (ReconnectBufSize); an error
	// means that buffer is full or the connection is closed.
	return n.nc.Publish(subject, data)
}

func (n *natsBroker) Run(ctx context.Context, prefix string, deliver func(string, []byte), state func(bool, error)) {
	sub, err := n.nc.Subscribe(prefix+">", func(m *nats.Msg) { deliver(m.Subject, m.Data) })
	if err != nil {
		state(false, fmt.Errorf("subscribe %s>: %w", prefix, err))
		return
	}
	defer sub.Unsubscribe()
	for {
		select {
		case <-ctx.Done():
			return
		case up := <-n.state:
			if up {
				state(true, nil)
			} else {
				state(false, fmt.Errorf("disconnected from %s", n.nc.ConnectedUrlRedacted()))
			}
		}
	}
}

func (n *natsBroker) Close() error {
	n.nc.Close()
	return nil
}
