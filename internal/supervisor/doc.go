// Package supervisor owns the lifecycle of agents: it turns resolved
// manifest agents into sandboxes, watches them, applies the restart policy
// with capped exponential backoff, freezes and thaws them, kills them with a
// grace period, records every transition in the store, and after a daemon
// restart reattaches to the agents still alive and accounts for the rest.
//
// States are exactly those of the seed: starting, running, suspended,
// stopped, failed. Every end carries a reason: Exited, OOMKilled, Killed,
// "StartError: <why>" or RestartLimit.
//
// It does not parse manifests, talk HTTP or build mount trees itself; it
// calls the sandbox, cgroups, logs and store packages, and the Wirings
// (egress, bus, LLM gateway) the daemon passes in.
package supervisor
