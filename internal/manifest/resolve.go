package manifest

import (
	"path"
	"slices"
)

// Resolve decides every field of every agent, in the order agents are
// written. Each field is taken from the agent, else from m.Defaults, else
// from d: runtime, cpu/memory/pids limits (each on its own), restart policy,
// max restarts. Capabilities are the agent's merged with
// global_capabilities: lists are unioned (agent's entries first), without
// duplicates, in written order (filesystem paths cleaned first: "./data/"
// is "data"), and stay nil only when neither declares
// them (nil bus ACLs mean "every channel"); observability.metrics is on if
// either turns it on; security.logging and llm.budget are the agent's when
// it sets them, else the global ones; bus.broker comes from
// global_capabilities only. Env is copied in written order.
//
// The result shares no memory with m. Resolve never fails or panics; on a
// manifest that passed Validate, with d's limits > 0, every limit of every
// agent is > 0.
func (m *Manifest) Resolve(d DaemonDefaults) []ResolvedAgent {
	out := make([]ResolvedAgent, 0, len(m.Agents))
	def := m.Defaults
	g := m.GlobalCapabilities
	for _, a := range m.Agents {
		r := ResolvedAgent{
			Project:       m.Project,
			Name:          a.Name,
			Description:   a.Description,
			Runtime:       first(a.Runtime, def.Runtime, d.Runtime),
			Entrypoint:    a.Entrypoint,
			RestartPolicy: first(a.RestartPolicy, def.RestartPolicy, d.RestartPolicy),
			MaxRestarts:   d.MaxRestarts,
			Limits: Limits{
				CPU:    first(a.Resources.CPULimit, def.Resources.CPULimit, d.Limits.CPU),
				Memory: first(a.Resources.MemLimit, def.Resources.MemLimit, d.Limits.Memory),
				Pids:   first(a.Resources.PidsLimit, def.Resources.PidsLimit, d.Limits.Pids),
			},
			Capabilities: mergeCapabilities(a.Capabilities, g),
			Env:          slices.Clone(a.Env),
		}
		if a.Dependencies != nil {
			d := *a.Dependencies
			r.Dependencies = &d
		}
		switch {
		case a.MaxRestarts != nil:
			r.MaxRestarts = *a.MaxRestarts
		case def.MaxRestarts != nil:
			r.MaxRestarts = *def.MaxRestarts
		}
		out = append(out, r)
	}
	return out
}

// first returns the first non-zero value.
func first[T comparable](vs ...T) T {
	var zero T
	for _, v := range vs {
		if v != zero {
			return v
		}
	}
	return zero
}

func mergeCapabilities(a, g Capabilities) Capabilities {
	c := Capabilities{
		NetworkAccess:   union(a.NetworkAccess, g.NetworkAccess),
		FilesystemRead:  union(cleanPaths(a.FilesystemRead), cleanPaths(g.FilesystemRead)),
		FilesystemWrite: union(cleanPaths(a.FilesystemWrite), cleanPaths(g.FilesystemWrite)),
		Metrics:         a.Metrics || g.Metrics,
		Logging:         first(a.Logging, g.Logging),
		BusBroker:       g.BusBroker,
		BusPublish:      union(a.BusPublish, g.BusPublish),
		BusSubscribe:    union(a.BusSubscribe, g.BusSubscribe),
		BusDurable:      union(a.BusDurable, g.BusDurable),
		LLMAccess:       union(a.LLMAccess, g.LLMAccess),
	}
	switch {
	case a.LLMBudget != nil:
		b := *a.LLMBudget
		c.LLMBudget = &b
	case g.LLMBudget != nil:
		b := *g.LLMBudget
		c.LLMBudget = &b
	}
	return c
}

// cleanPaths returns paths lexically cleaned ("./data/" is "data"), so
// that the same directory written two ways is listed once.
func cleanPaths(ps []string) []string {
	if ps == nil {
		return nil
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = path.Clean(p)
	}
	return out
}

// union returns the entries of a then b, each once, in order; nil when both
// are nil, non-nil (maybe empty) when either is declared.
func union(a, b []string) []string {
	if a == nil && b == nil {
		return nil
	}
	out := make([]string, 0, len(a)+len(b))
	seen := make(map[string]bool, len(a)+len(b))
	for _, list := range [][]string{a, b} {
		for _, s := range list {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}
