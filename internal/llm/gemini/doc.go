// Package gemini is the connector for Google's Generative Language API
// (generateContent, streamGenerateContent, embedContent): it translates
// canonical requests to Gemini's contents and parts and its answers back
// to canonical events.
//
// It must not route, cache or meter (internal/llm does), nor read keys:
// it gets a canon.Provider.
package gemini
