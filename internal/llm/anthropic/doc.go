// Package anthropic speaks Anthropic's Messages API wire format in both
// directions: Connector (with Encode, the translation of a canonical
// request) calls Anthropic, and the ingress side (Parse, Render,
// StreamWriter, ErrorBody) is the Anthropic-compatible API agents call.
//
// It must not route, cache or meter (internal/llm does), nor read keys:
// it gets a canon.Provider.
package anthropic
