// Package bus is Cortex's message bus: an embedded NATS server (JetStream on,
// no TCP listener unless configured) that carries named channels scoped to a
// project, served to each agent over its own unix socket with a
// line-delimited JSON protocol (docs/bus-protocol.md).
//
// It owns: the embedded server and its store directory, the per-agent
// sockets (who is on a socket is fixed when the daemon serves it; the wire
// protocol has no sender field an agent controls), channel ACLs, payload
// limits, durable channels (JetStream streams with one durable consumer per
// subscribing agent), bounded per-subscriber buffers with drop counters,
// bridges to an external Redis Pub/Sub or NATS broker for cross-node
// projects, and the operator surface (Publish, Subscribe, Stats and an
// http.Handler for /v1/bus/).
//
// It must not: parse manifests (the daemon turns capabilities into a
// Policy), authenticate API callers (the API server does that before the
// Handler), create sandboxes or mount the socket into them, or read CORTEX_*
// environment variables.
package bus
