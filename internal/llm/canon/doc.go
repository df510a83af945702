// Package canon is the LLM gateway's canonical model and the scaffolding
// every connector shares. Every ingress format (internal/llm/openai,
// internal/llm/anthropic) parses into a Request, every Connector answers
// with a Stream of Events, and the ingress renders them back; one model
// means N ingress formats and M connectors need N+M translations, not N*M.
//
// It owns the model (Request, Response, Event, Usage, ...), the Connector
// and Stream interfaces a provider implements, UpstreamError, the HTTP
// plumbing of one upstream account (Provider: post, classify and scrub
// errors), the event queue every connector's stream is built on
// (QueueStream), the server-sent-events reader and writer, and Secret.
//
// It must not route, cache, meter, read configuration or know any one
// provider's wire format.
package canon
