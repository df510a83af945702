package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// Health checks the embedded server: the in-process connection is up,
// JetStream is enabled and its account answers (store use and streams).
// For doctor's bus.health; broker bridges are in Brokers.
func (s *Server) Health(ctx context.Context) (string, error) {
	if s.isClosed() {
		return "", errors.New("the bus is closed")
	}
	if st := s.nc.Status(); st != nats.CONNECTED {
		return "", fmt.Errorf("the daemon's connection to the embedded NATS server is %s", st)
	}
	if !s.ns.JetStreamEnabled() {
		return "", errors.New("JetStream is not enabled on the embedded NATS server")
	}
	info, err := s.js.AccountInfo(ctx)
	if err != nil {
		return "", fmt.Errorf("JetStream account: %w", err)
	}
	return fmt.Sprintf("embedded NATS up, JetStream store %s: %d stream(s), %d bytes on disk", s.ns.JetStreamConfig().StoreDir, info.Streams, info.Store), nil
}
