package api

import "encoding/json"

import "time"

// The LLM gateway's admin API, served by internal/llm under /v1/llm/:
//
//	GET  /v1/llm/usage   ?project=&agent=&alias=&model=&since=YYYY-MM-DD&until=&group=day,agent,model  LLMUsageReport
//	GET  /v1/llm/models  LLMModels
//	POST /v1/llm/chat    LLMChatRequest; LLMChatResult
//	POST /v1/llm/cassettes?project=P  LLMCassettes; LLMCassetteUpload (files held for a run of P naming them in X-Cortex-LLM-Cassette)
//	GET  /v1/llm/cassettes/{project}  LLMCassettes (what a run with X-Cortex-LLM-Mode: record recorded)

// LLMUsageReport answers GET /v1/llm/usage.
type LLMUsageReport struct {
	Rows  []LLMUsageRow `json:"rows"`
	Total LLMUsageRow   `json:"total"`
}

// LLMUsageRow is usage summed over the dimensions of a report; dimensions
// not grouped by are empty.
type LLMUsageRow struct {
	Day              string  `json:"day,omitempty"`
	Project          string  `json:"project,omitempty"`
	Agent            string  `json:"agent,omitempty"`
	Alias            string  `json:"alias,omitempty"`
	Provider         string  `json:"provider,omitempty"`
	Model            string  `json:"model,omitempty"`
	Requests         int64   `json:"requests"`
	Errors           int64   `json:"errors"`
	CacheHits        int64   `json:"cache_hits"`
	InputTokens      int64   `json:"input_tokens"`
	OutputTokens     int64   `json:"output_tokens"`
	CacheReadTokens  int64   `json:"cache_read_tokens"`
	CacheWriteTokens int64   `json:"cache_write_tokens"`
	CostUSD          float64 `json:"cost_usd"`
}

// LLMModels answers GET /v1/llm/models.
type LLMModels struct {
	Aliases []LLMAlias `json:"aliases"`
}

// LLMAlias describes one configured alias.
type LLMAlias struct {
	Name     string      `json:"name"`
	Strategy string      `json:"strategy"`
	Cache    bool        `json:"cache"`
	Retries  int         `json:"retries"`
	Targets  []LLMTarget `json:"targets"`
}

// LLMTarget describes one target of an alias and its current health.
type LLMTarget struct {
	Provider         string     `json:"provider"`
	Kind             string     `json:"kind"`
	Model            string     `json:"model"`
	Weight           float64    `json:"weight,omitempty"`
	Timeout          string     `json:"timeout"`         // a Go duration: 30s
	Price            *LLMPrice  `json:"price,omitempty"` // nil when unknown
	CoolingDownUntil *time.Time `json:"cooling_down_until,omitempty"`
	LatencyMs        float64    `json:"latency_ms,omitempty"` // moving average time to first token
}

// LLMPrice is USD per million tokens.
type LLMPrice struct {
	Input       float64  `json:"input"`
	Output      float64  `json:"output"`
	CachedInput *float64 `json:"cached_input,omitempty"`
}

// LLMChatRequest is the body of POST /v1/llm/chat, a quick check from the
// host.
type LLMChatRequest struct {
	Alias     string `json:"alias"`
	Prompt    string `json:"prompt"`
	System    string `json:"system,omitempty"`
	MaxTokens int    `json:"max_tokens,omitempty"`
	NoCache   bool   `json:"no_cache,omitempty"`
}

// LLMChatResult answers POST /v1/llm/chat.
type LLMChatResult struct {
	Alias              string   `json:"alias"`
	Provider           string   `json:"provider"`
	Model              string   `json:"model"`
	Text               string   `json:"text"`
	ToolCalls          int      `json:"tool_calls,omitempty"`
	FinishReason       string   `json:"finish_reason"`
	NativeFinishReason string   `json:"native_finish_reason,omitempty"`
	Cache              string   `json:"cache"`
	Attempts           int      `json:"attempts"`
	Usage              LLMUsage `json:"usage"`
	AddedLatencyMs     float64  `json:"added_latency_ms"`
	TotalMs            float64  `json:"total_ms"`
}

// LLMUsage counts the tokens of one answer.
type LLMUsage struct {
	InputTokens      int64 `json:"input_tokens"`
	OutputTokens     int64 `json:"output_tokens"`
	CacheReadTokens  int64 `json:"cache_read_tokens,omitempty"`
	CacheWriteTokens int64 `json:"cache_write_tokens,omitempty"`
}

// LLMCassettes are cassette files (internal/llm.CassetteFile) by file
// name (<key>.json).
type LLMCassettes struct {
	Files map[string]json.RawMessage `json:"files"`
}

// LLMCassetteUpload answers POST /v1/llm/cassettes: the id a run names in
// its X-Cortex-LLM-Cassette header.
type LLMCassetteUpload struct {
	ID string `json:"id"`
}
