// Package cgroups owns the control groups of Cortex agents: it creates one
// cgroup per agent under a parent named by the daemon, applies the agent's
// ceilings (memory with swap off, CPU quota, pids), places processes in it,
// freezes and thaws it, reads its usage and OOM-kill count, kills everything
// in it and removes it from every hierarchy.
//
// Two drivers sit behind one Manager interface: cgroup v1 (one hierarchy per
// controller: memory, cpu, cpuacct, pids, freezer) and cgroup v2 (the unified
// tree). New detects the host's mode at start and never assumes one; a
// "hybrid" host (v1 controllers plus an empty cgroup2 mount) gets the v1
// driver. Probe reports what the host supports for `cortex doctor` and tests.
// Both drivers use github.com/containerd/cgroups/v3 for creating groups,
// writing limits, adding processes and reading statistics; the few things it
// lacks or does in a way a daemon cannot use (bounded freeze waits, a
// pid-reuse-safe kill loop, idempotent removal with EBUSY retries, listing
// groups for orphan cleanup) are written here.
//
// This package must not start processes, enter namespaces or decide policy:
// which limits an agent gets, and what an OOM kill means for its lifecycle,
// belong to the supervisor. It never touches a cgroup outside its parent.
package cgroups
