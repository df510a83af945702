package config

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Bus is the `bus:` section: it tunes the message bus (internal/bus
// consumes it). Zero fields take the DefaultBus value (see WithDefaults).
type Bus struct {
	// MaxPayload is the largest payload (the JSON object's encoded bytes)
	// a publisher may send. Larger ones are refused at the publisher.
	MaxPayload int64 `yaml:"max_payload"`
	// SubscriberBuffer is how many messages of a non-durable channel wait
	// for one slow subscriber before newer ones are dropped (and counted).
	SubscriberBuffer int `yaml:"subscriber_buffer"`
	// Listen opens a NATS TCP listener (host:port) for debugging tools;
	// "" (the default) opens none. It has no authentication: loopback only.
	Listen string `yaml:"listen"`
	// MaxAckPending is the flow-control window of a durable subscription:
	// how many delivered, unacknowledged messages one agent may hold.
	MaxAckPending int `yaml:"max_ack_pending"`
	// AckWait is how long the store waits for an acknowledgement before
	// redelivering. Messages held by a live connection are kept alive, so
	// this only matters when the daemon itself dies.
	AckWait time.Duration `yaml:"ack_wait"`
	// DurableMaxAge and DurableMaxBytes bound each durable channel's store;
	// the oldest messages are discarded first.
	DurableMaxAge   time.Duration `yaml:"durable_max_age"`
	DurableMaxBytes int64         `yaml:"durable_max_bytes"`
	// MaxConnsPerAgent caps concurrent connections on one agent socket.
	MaxConnsPerAgent int `yaml:"max_conns_per_agent"`
	// BridgeBuffer is how many outbound messages a broker bridge queues
	// while its broker is unreachable before dropping (and counting).
	BridgeBuffer int `yaml:"bridge_buffer"`
	// MaxChannelsPerProject caps how many distinct channels a project may
	// use (each has counters in the daemon), so an agent publishing to
	// ever new names cannot grow the daemon's memory without bound.
	MaxChannelsPerProject int `yaml:"max_channels_per_project"`
	// NodeID names this daemon to broker bridges (echo suppression). ""
	// generates one and keeps it in the store directory.
	NodeID string `yaml:"node_id"`
}

// DefaultBus is the built-in bus configuration.
func DefaultBus() Bus {
	return Bus{
		MaxPayload:       1 << 20,
		SubscriberBuffer: 1024,
		MaxAckPending:    256,
		AckWait:          30 * time.Second,
		DurableMaxAge:    7 * 24 * time.Hour,
		DurableMaxBytes:  1 << 30,
		MaxConnsPerAgent: 64,
		BridgeBuffer:     4096,

		MaxChannelsPerProject: 10000,
	}
}

// maxPayloadCeiling keeps payloads under NATS's own 64 MiB ceiling with
// room for headers.
const maxPayloadCeiling = 32 << 20

// WithDefaults returns c with every zero field set from DefaultBus.
func (c Bus) WithDefaults() Bus {
	d := DefaultBus()
	if c.MaxPayload == 0 {
		c.MaxPayload = d.MaxPayload
	}
	if c.SubscriberBuffer == 0 {
		c.SubscriberBuffer = d.SubscriberBuffer
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = d.MaxAckPending
	}
	if c.AckWait == 0 {
		c.AckWait = d.AckWait
	}
	if c.DurableMaxAge == 0 {
		c.DurableMaxAge = d.DurableMaxAge
	}
	if c.DurableMaxBytes == 0 {
		c.DurableMaxBytes = d.DurableMaxBytes
	}
	if c.MaxConnsPerAgent == 0 {
		c.MaxConnsPerAgent = d.MaxConnsPerAgent
	}
	if c.BridgeBuffer == 0 {
		c.BridgeBuffer = d.BridgeBuffer
	}
	if c.MaxChannelsPerProject == 0 {
		c.MaxChannelsPerProject = d.MaxChannelsPerProject
	}
	return c
}

// Validate returns every problem of c (after defaults), joined, each
// naming its field (bus.max_payload: ...).
func (c Bus) Validate() error {
	var errs []error
	c.validate(func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	})
	return errors.Join(errs...)
}

// ValidNodeID reports whether s can name a node to broker bridges: 1-64
// letters, digits, '-' or '_'.
func ValidNodeID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func (c Bus) validate(bad problem) {
	bad = prefixed(bad, "bus.")
	if c.MaxPayload < 1 || c.MaxPayload > maxPayloadCeiling {
		bad("max_payload", "%d is out of range; use 1 to %d bytes", c.MaxPayload, maxPayloadCeiling)
	}
	if c.SubscriberBuffer < 1 {
		bad("subscriber_buffer", "must be >= 1")
	}
	if c.MaxAckPending < 1 {
		bad("max_ack_pending", "must be >= 1")
	}
	if c.AckWait < time.Second {
		bad("ack_wait", "%s is too short; use at least 1s", c.AckWait)
	}
	if c.DurableMaxAge < 0 {
		bad("durable_max_age", "must be >= 0")
	}
	if c.DurableMaxBytes < 0 {
		bad("durable_max_bytes", "must be >= 0")
	}
	if c.MaxConnsPerAgent < 1 {
		bad("max_conns_per_agent", "must be >= 1")
	}
	if c.BridgeBuffer < 1 {
		bad("bridge_buffer", "must be >= 1")
	}
	if c.MaxChannelsPerProject < 1 {
		bad("max_channels_per_project", "must be >= 1")
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			bad("listen", "%q is not host:port", c.Listen)
		}
	}
	if c.NodeID != "" && !ValidNodeID(c.NodeID) {
		bad("node_id", "%q: use 1-64 letters, digits, '-' or '_'", c.NodeID)
	}
}
