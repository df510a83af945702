// Package openai speaks OpenAI's chat completions and embeddings wire
// format in both directions: Connector sends canonical requests to OpenAI
// and to any OpenAI-compatible server (Ollama, vLLM, llama.cpp), and the
// ingress side (ParseChat, Render, StreamWriter, ErrorBody, ParseEmbed,
// RenderEmbed) is the OpenAI-compatible API agents call.
//
// It must not route, cache or meter (internal/llm does), nor read keys:
// it gets a canon.Provider.
package openai
