package config

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/strictyaml"
)

// Provider kinds of the llm section; internal/llm has a connector for each.
const (
	ProviderOpenAI           = "openai"
	ProviderAnthropic        = "anthropic"
	ProviderGemini           = "gemini"
	ProviderOpenAICompatible = "openai-compatible"
)

// Routing strategies of an alias.
const (
	StrategyOrdered       = "ordered"        // targets in the order written
	StrategyWeighted      = "weighted"       // first target drawn by weight, then the rest in order
	StrategyLowestLatency = "lowest-latency" // by observed time to first token
	StrategyLowestCost    = "lowest-cost"    // by price per token
)

// LLM is the `llm:` section: the LLM gateway's providers, aliases and
// routing (internal/llm consumes it).
type LLM struct {
	Providers []LLMProvider       `yaml:"providers"`
	Aliases   map[string]LLMAlias `yaml:"aliases"`
	Routing   LLMRouting          `yaml:"routing"`
	Cache     LLMCache            `yaml:"cache"`
	Prices    map[string]Price    `yaml:"prices"`
	Defaults  LLMDefaults         `yaml:"defaults"`
}

// LLMProvider is one upstream account. Exactly one of APIKeyFile and
// APIKeyEnv is required for openai, anthropic and gemini; an
// openai-compatible server (Ollama, vLLM, llama.cpp) may have neither.
type LLMProvider struct {
	Name    string `yaml:"name"`
	Kind    string `yaml:"kind"`
	BaseURL string `yaml:"base_url"`
	// APIKeyFile is a file owned by the daemon's user with no group or
	// other permission bits (chmod 600); anything looser is refused.
	APIKeyFile string `yaml:"api_key_file"`
	// APIKeyEnv names an environment variable of the daemon holding the key.
	APIKeyEnv string `yaml:"api_key_env"`
	// Headers are sent on every upstream request (e.g. OpenAI-Organization).
	Headers map[string]string `yaml:"headers"`
	// Timeout overrides routing.timeout for every target of this provider.
	Timeout time.Duration `yaml:"timeout"`
}

// LLMAlias is a model name agents use, mapped to provider/model targets.
type LLMAlias struct {
	Targets []LLMTarget `yaml:"targets"`
	// Strategy is ordered (default), weighted (default when a weight is
	// set), lowest-latency or lowest-cost.
	Strategy string `yaml:"strategy"`
	// Cache turns the response cache off for this alias when false.
	Cache *bool `yaml:"cache"`
	// Retries overrides routing.retries for this alias.
	Retries *int `yaml:"retries"`
}

// LLMTarget is one provider/model an alias may be served by.
type LLMTarget struct {
	Provider string        `yaml:"provider"`
	Model    string        `yaml:"model"`
	Weight   float64       `yaml:"weight"`
	Timeout  time.Duration `yaml:"timeout"`
	Price    *Price        `yaml:"price"`
}

// LLMRouting tunes retries, fallback and cooldown for every alias.
type LLMRouting struct {
	// Retries is how many times a target is retried on a retryable error
	// (network error, timeout, 408, 429, 5xx) before falling back.
	Retries int `yaml:"retries"`
	// Backoff is the first retry delay, doubled each retry up to BackoffMax
	// (an upstream Retry-After within BackoffMax is honoured).
	Backoff    time.Duration `yaml:"backoff"`
	BackoffMax time.Duration `yaml:"backoff_max"`
	// Cooldown is how long a target that failed (after its retries) is
	// skipped. When every target of an alias is cooling down, the one whose
	// cooldown ends first is tried anyway.
	Cooldown time.Duration `yaml:"cooldown"`
	// Timeout bounds a non-streamed call, and a streamed call until its
	// first token; a target's or provider's timeout overrides it.
	Timeout time.Duration `yaml:"timeout"`
	// StreamIdleTimeout bounds the gap between two events of a stream once
	// it has started.
	StreamIdleTimeout time.Duration `yaml:"stream_idle_timeout"`
}

// LLMCache tunes the exact-match response cache.
type LLMCache struct {
	Enabled bool          `yaml:"enabled"`
	TTL     time.Duration `yaml:"ttl"`
	// MaxSize caps the bytes on disk (a quantity: 256Mi, 1Gi); the least
	// recently used entries are removed first.
	MaxSize manifest.Quantity `yaml:"max_size"`
}

// Price is USD per million tokens. CachedInput, when set, is charged for
// cache-read input tokens instead of Input.
type Price struct {
	Input       float64  `yaml:"input"`
	Output      float64  `yaml:"output"`
	CachedInput *float64 `yaml:"cached_input"`
}

// LLMDefaults fill in what a request leaves out.
type LLMDefaults struct {
	// MaxTokens is sent to providers that require a limit (Anthropic) when
	// the request has none.
	MaxTokens int `yaml:"max_tokens"`
}

func ptr[T any](v T) *T { return &v }

// DefaultPrices is the shipped price table (USD per million tokens, list
// prices of the providers). Config prices are merged over it; a model is
// matched exactly, then by the longest table key it starts with (so
// gpt-4o-mini-2024-07-18 uses gpt-4o-mini). Models of openai-compatible
// providers cost nothing unless priced.
func DefaultPrices() map[string]Price {
	return map[string]Price{
		"gpt-4o":                 {Input: 2.50, Output: 10.00, CachedInput: ptr(1.25)},
		"gpt-4o-mini":            {Input: 0.15, Output: 0.60, CachedInput: ptr(0.075)},
		"gpt-4.1":                {Input: 2.00, Output: 8.00, CachedInput: ptr(0.50)},
		"gpt-4.1-mini":           {Input: 0.40, Output: 1.60, CachedInput: ptr(0.10)},
		"gpt-4.1-nano":           {Input: 0.10, Output: 0.40, CachedInput: ptr(0.025)},
		"o3":                     {Input: 2.00, Output: 8.00, CachedInput: ptr(0.50)},
		"o3-mini":                {Input: 1.10, Output: 4.40, CachedInput: ptr(0.55)},
		"o4-mini":                {Input: 1.10, Output: 4.40, CachedInput: ptr(0.275)},
		"text-embedding-3-small": {Input: 0.02},
		"text-embedding-3-large": {Input: 0.13},
		"claude-opus-4":          {Input: 15.00, Output: 75.00, CachedInput: ptr(1.50)},
		"claude-sonnet-4":        {Input: 3.00, Output: 15.00, CachedInput: ptr(0.30)},
		"claude-3-7-sonnet":      {Input: 3.00, Output: 15.00, CachedInput: ptr(0.30)},
		"claude-3-5-sonnet":      {Input: 3.00, Output: 15.00, CachedInput: ptr(0.30)},
		"claude-3-5-haiku":       {Input: 0.80, Output: 4.00, CachedInput: ptr(0.08)},
		"claude-3-haiku":         {Input: 0.25, Output: 1.25, CachedInput: ptr(0.03)},
		"gemini-2.5-pro":         {Input: 1.25, Output: 10.00, CachedInput: ptr(0.31)},
		"gemini-2.5-flash":       {Input: 0.30, Output: 2.50, CachedInput: ptr(0.075)},
		"gemini-2.0-flash":       {Input: 0.10, Output: 0.40, CachedInput: ptr(0.025)},
		"gemini-1.5-pro":         {Input: 1.25, Output: 5.00},
		"gemini-1.5-flash":       {Input: 0.075, Output: 0.30},
		"text-embedding-004":     {Input: 0},
	}
}

// DefaultLLM returns the built-in llm section: no providers or aliases
// (nothing is reachable until the operator configures it), the default
// price table, the cache on (1h TTL, 256Mi), one retry, 30s cooldown.
func DefaultLLM() LLM {
	return LLM{
		Providers: nil,
		Aliases:   map[string]LLMAlias{},
		Routing: LLMRouting{
			Retries:           1,
			Backoff:           200 * time.Millisecond,
			BackoffMax:        5 * time.Second,
			Cooldown:          30 * time.Second,
			Timeout:           60 * time.Second,
			StreamIdleTimeout: 120 * time.Second,
		},
		Cache:    LLMCache{Enabled: true, TTL: time.Hour, MaxSize: 256 << 20},
		Prices:   DefaultPrices(),
		Defaults: LLMDefaults{MaxTokens: 4096},
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$`)

// DefaultBaseURL is the base URL used for a provider kind when base_url is
// empty ("" for openai-compatible, which must name its server).
func DefaultBaseURL(kind string) string {
	switch kind {
	case ProviderOpenAI:
		return "https://api.openai.com/v1"
	case ProviderAnthropic:
		return "https://api.anthropic.com/v1"
	case ProviderGemini:
		return "https://generativelanguage.googleapis.com/v1beta"
	}
	return ""
}

// Validate returns every problem of c, joined, each naming the field
// (llm.providers[1].kind: ...) and the fix.
func (c *LLM) Validate() error {
	var errs []error
	c.validate(func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	})
	return errors.Join(errs...)
}

func (c *LLM) validate(bad problem) {
	bad = prefixed(bad, "llm.")
	providers := map[string]LLMProvider{}
	for i, p := range c.Providers {
		f := fmt.Sprintf("providers[%d]", i)
		if !nameRE.MatchString(p.Name) {
			bad(f+".name", "%q is not a valid name; use letters, digits, . _ - (e.g. openai)", p.Name)
		} else if _, dup := providers[p.Name]; dup {
			bad(f+".name", "%q is declared twice", p.Name)
		}
		providers[p.Name] = p
		switch p.Kind {
		case ProviderOpenAI, ProviderAnthropic, ProviderGemini, ProviderOpenAICompatible:
		default:
			bad(f+".kind", "%q is not a provider kind; use openai, anthropic, gemini or openai-compatible", p.Kind)
		}
		base := p.BaseURL
		if base == "" {
			base = DefaultBaseURL(p.Kind)
		}
		if base == "" && p.Kind == ProviderOpenAICompatible {
			bad(f+".base_url", "required for openai-compatible; e.g. http://127.0.0.1:11434/v1 for Ollama")
		} else if base != "" {
			u, err := url.Parse(base)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad(f+".base_url", "%q is not an http(s) URL", p.BaseURL)
			}
		}
		if p.APIKeyFile != "" && p.APIKeyEnv != "" {
			bad(f, "set api_key_file or api_key_env, not both")
		}
		if p.APIKeyFile == "" && p.APIKeyEnv == "" && p.Kind != ProviderOpenAICompatible && p.Kind != "" {
			bad(f, "kind %s needs api_key_file (a root-only file) or api_key_env", p.Kind)
		}
		if p.Timeout < 0 {
			bad(f+".timeout", "must not be negative")
		}
	}
	names := make([]string, 0, len(c.Aliases))
	for n := range c.Aliases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		a := c.Aliases[name]
		f := "aliases." + name
		if !nameRE.MatchString(name) {
			bad(f, "%q is not a valid alias name; use letters, digits, . _ - : /", name)
		}
		if len(a.Targets) == 0 {
			bad(f+".targets", "an alias needs at least one target")
		}
		switch a.Strategy {
		case "", StrategyOrdered, StrategyWeighted, StrategyLowestLatency, StrategyLowestCost:
		default:
			bad(f+".strategy", "%q; use ordered, weighted, lowest-latency or lowest-cost", a.Strategy)
		}
		if a.Retries != nil && (*a.Retries < 0 || *a.Retries > 10) {
			bad(f+".retries", "must be between 0 and 10")
		}
		for i, t := range a.Targets {
			tf := fmt.Sprintf("%s.targets[%d]", f, i)
			if _, ok := providers[t.Provider]; !ok {
				bad(tf+".provider", "%q is not a declared provider", t.Provider)
			}
			if strings.TrimSpace(t.Model) == "" {
				bad(tf+".model", "required")
			}
			if t.Weight < 0 {
				bad(tf+".weight", "must not be negative")
			}
			if t.Timeout < 0 {
				bad(tf+".timeout", "must not be negative")
			}
			if t.Price != nil {
				validPrice(bad, tf+".price", *t.Price)
			}
		}
	}
	r := c.Routing
	if r.Retries < 0 || r.Retries > 10 {
		bad("routing.retries", "must be between 0 and 10")
	}
	if r.Backoff < 0 || r.BackoffMax < r.Backoff {
		bad("routing.backoff", "must be >= 0 and <= backoff_max")
	}
	if r.Cooldown < 0 {
		bad("routing.cooldown", "must not be negative")
	}
	if r.Timeout <= 0 {
		bad("routing.timeout", "must be > 0, e.g. 60s")
	}
	if r.StreamIdleTimeout <= 0 {
		bad("routing.stream_idle_timeout", "must be > 0, e.g. 120s")
	}
	if c.Cache.TTL < 0 {
		bad("cache.ttl", "must not be negative")
	}
	for m, p := range c.Prices {
		validPrice(bad, "prices."+m, p)
	}
	if c.Defaults.MaxTokens <= 0 {
		bad("defaults.max_tokens", "must be > 0, e.g. 4096")
	}
}

func validPrice(bad problem, field string, p Price) {
	if p.Input < 0 || p.Output < 0 || (p.CachedInput != nil && *p.CachedInput < 0) {
		bad(field, "prices must not be negative")
	}
}

// ParseLLM decodes a file that holds only an llm: section's mapping (the
// Kubernetes LLM gateway's llm_config) over DefaultLLM, strictly, and
// validates it. It has no side effects.
func ParseLLM(data []byte, source string) (LLM, error) {
	c := DefaultLLM()
	if len(strings.TrimSpace(string(data))) > 0 {
		if err := strictyaml.Decode(data, source, &c); err != nil {
			return c, err
		}
	}
	return c, c.Validate()
}
