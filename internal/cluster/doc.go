// Package cluster is the in-cluster side of Cortex on Kubernetes: the
// modes of cortexd that the objects cortex render writes run in pods
// ("cortexd cluster <mode>"):
//
//   - fetch: the init container that pulls the bundle from its registry
//     (verified against its digest, and its signature with a key), unpacks
//     it for /app and writes the bootstrap shims and SDKs for /opt/cortex;
//   - bus-sidecar: the native sidecar that serves the agent's bus socket
//     (the same protocol as on a node) over the cluster's NATS;
//   - egress-gateway: the agent's own egress gateway, the HTTP proxy with
//     its network.access allowlist and a TCP forward to NATS;
//   - llm-gateway: the project's LLM gateway, provider keys from a Secret,
//     agents identified by their own token;
//   - seccomp-install: the Helm chart's DaemonSet that puts the agent
//     seccomp profile where the kubelet finds Localhost profiles.
//
// It owns the flags and wiring of these modes only; the work is done by
// internal/oci, internal/bundle, internal/bus, internal/egress and
// internal/llm, exactly as on a single node. It must not render or apply
// Kubernetes objects (internal/kube does) or talk to the Kubernetes API.
package cluster
