// Package llm is the Cortex LLM gateway: it gives agents models without giving
// them provider keys.
//
// It owns the agent-facing HTTP API reachable inside every sandbox at
// http://llm.cortex.internal (an OpenAI-compatible /v1/chat/completions,
// /v1/embeddings and /v1/models, and an Anthropic-compatible /v1/messages),
// the per-agent tokens that identify callers, the choice of connector per
// provider kind, alias routing (retries, fallback, cooldown,
// strategies, per-target timeouts), the exact-match response cache on disk,
// usage metering and budgets persisted in SQLite, and the admin API the
// daemon mounts under /v1/llm/ for `cortex llm usage|models|chat`.
//
// The wire formats live in one subpackage per provider behind
// canon.Connector (internal/llm/openai, internal/llm/anthropic,
// internal/llm/gemini; the first two also parse and render the agent-facing
// formats), on the canonical model of internal/llm/canon.
//
// It must not read manifests, start processes, touch the network namespace
// of agents or listen on any socket: the daemon wires AgentHandler into the
// egress gateway and AdminHandler into its API. Provider keys come only from
// the daemon's config (a root-only key file or a named environment
// variable); they never appear in a response, a log line or Env.
package llm
