package llm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/cortexrt/cortex/internal/manifest"
	"go.yaml.in/yaml/v3"
)

// Provider kinds a connector exists for.
const (
	KindOpenAI           = "openai"
	KindAnthropic        = "anthropic"
	KindGemini           = "gemini"
	KindOpenAICompatible = "openai-compatible"
)

// Routing strategies of an alias.
const (
	StrategyOrdered       = "ordered"        // targets in the order written
	StrategyWeighted      = "weighted"       // first target drawn by weight, then the rest in order
	StrategyLowestLatency = "lowest-latency" // by observed time to first token
	StrategyLowestCost    = "lowest-cost"    // by price per token
)

// Config is the `llm:` section of the daemon's config.yaml. The daemon
// embeds it; Parse/ParseConfig decode strictly (unknown fields are errors).
type Config struct {
	Providers []ProviderConfig `yaml:"providers" json:"providers"`
	Aliases   map[string]Alias `yaml:"aliases" json:"aliases"`
	Routing   Routing          `yaml:"routing" json:"routing"`
	Cache     CacheConfig      `yaml:"cache" json:"cache"`
	Prices    map[string]Price `yaml:"prices" json:"prices"`
	Defaults  RequestDefaults  `yaml:"defaults" json:"defaults"`
}

// ProviderConfig is one upstream account. Exactly one of APIKeyFile and
// APIKeyEnv is required for openai, anthropic and gemini; an
// openai-compatible server (Ollama, vLLM, llama.cpp) may have neither.
type ProviderConfig struct {
	Name    string `yaml:"name" json:"name"`
	Kind    string `yaml:"kind" json:"kind"`
	BaseURL string `yaml:"base_url" json:"base_url"`
	// APIKeyFile is a file owned by the daemon's user with no group or
	// other permission bits (chmod 600); anything looser is refused.
	APIKeyFile string `yaml:"api_key_file" json:"api_key_file,omitempty"`
	// APIKeyEnv names an environment variable of the daemon holding the key.
	APIKeyEnv string `yaml:"api_key_env" json:"api_key_env,omitempty"`
	// Headers are sent on every upstream request (e.g. OpenAI-Organization).
	Headers map[string]string `yaml:"headers" json:"headers,omitempty"`
	// Timeout overrides routing.timeout for every target of this provider.
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
}

// Alias is a model name agents use, mapped to provider/model targets.
type Alias struct {
	Targets []Target `yaml:"targets" json:"targets"`
	// Strategy is ordered (default), weighted (default when a weight is
	// set), lowest-latency or lowest-cost.
	Strategy string `yaml:"strategy" json:"strategy,omitempty"`
	// Cache turns the response cache off for this alias when false.
	Cache *bool `yaml:"cache" json:"cache,omitempty"`
	// Retries overrides routing.retries for this alias.
	Retries *int `yaml:"retries" json:"retries,omitempty"`
}

// Target is one provider/model an alias may be served by.
type Target struct {
	Provider string   `yaml:"provider" json:"provider"`
	Model    string   `yaml:"model" json:"model"`
	Weight   float64  `yaml:"weight" json:"weight,omitempty"`
	Timeout  Duration `yaml:"timeout" json:"timeout,omitempty"`
	Price    *Price   `yaml:"price" json:"price,omitempty"`
}

// Routing tunes retries, fallback and cooldown for every alias.
type Routing struct {
	// Retries is how many times a target is retried on a retryable error
	// (network error, timeout, 408, 429, 5xx) before falling back.
	Retries int `yaml:"retries" json:"retries"`
	// Backoff is the first retry delay, doubled each retry up to BackoffMax
	// (an upstream Retry-After within BackoffMax is honoured).
	Backoff    Duration `yaml:"backoff" json:"backoff"`
	BackoffMax Duration `yaml:"backoff_max" json:"backoff_max"`
	// Cooldown is how long a target that failed (after its retries) is
	// skipped. When every target of an alias is cooling down, the one whose
	// cooldown ends first is tried anyway.
	Cooldown Duration `yaml:"cooldown" json:"cooldown"`
	// Timeout bounds a non-streamed call, and a streamed call until its
	// first token; a target's or provider's timeout overrides it.
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// StreamIdleTimeout bounds the gap between two events of a stream once
	// it has started.
	StreamIdleTimeout Duration `yaml:"stream_idle_timeout" json:"stream_idle_timeout"`
}

// CacheConfig tunes the exact-match response cache.
type CacheConfig struct {
	Enabled bool     `yaml:"enabled" json:"enabled"`
	TTL     Duration `yaml:"ttl" json:"ttl"`
	// MaxSize caps the bytes on disk (a quantity: 256Mi, 1Gi); the least
	// recently used entries are removed first.
	MaxSize string `yaml:"max_size" json:"max_size"`
}

// Price is USD per million tokens. CachedInput, when set, is charged for
// cache-read input tokens instead of Input.
type Price struct {
	Input       float64  `yaml:"input" json:"input"`
	Output      float64  `yaml:"output" json:"output"`
	CachedInput *float64 `yaml:"cached_input" json:"cached_input,omitempty"`
}

// RequestDefaults fill in what a request leaves out.
type RequestDefaults struct {
	// MaxTokens is sent to providers that require a limit (Anthropic) when
	// the request has none.
	MaxTokens int `yaml:"max_tokens" json:"max_tokens"`
}

// Duration is a time.Duration written as "30s" in YAML and JSON.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration; write e.g. 30s or 500ms", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration", s)
	}
	*d = Duration(v)
	return nil
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

// DefaultConfig returns the built-in configuration: no providers or
// aliases (nothing is reachable until the operator configures it), the
// default price table, the cache on (1h TTL, 256Mi), one retry, 30s
// cooldown.
func DefaultConfig() Config {
	return Config{
		Providers: nil,
		Aliases:   map[string]Alias{},
		Routing: Routing{
			Retries:           1,
			Backoff:           Duration(200 * time.Millisecond),
			BackoffMax:        Duration(5 * time.Second),
			Cooldown:          Duration(30 * time.Second),
			Timeout:           Duration(60 * time.Second),
			StreamIdleTimeout: Duration(120 * time.Second),
		},
		Cache:    CacheConfig{Enabled: true, TTL: Duration(time.Hour), MaxSize: "256Mi"},
		Prices:   DefaultPrices(),
		Defaults: RequestDefaults{MaxTokens: 4096},
	}
}

// ParseConfig decodes an `llm:` section (the mapping under the key, not
// the whole daemon config) over DefaultConfig, strictly. It has no side
// effects; call Validate next.
func ParseConfig(r io.Reader) (Config, error) {
	c := DefaultConfig()
	data, err := io.ReadAll(r)
	if err != nil {
		return c, fmt.Errorf("read llm config: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return c, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("llm config: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return c, nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$`)

// DefaultBaseURL is the base URL used for a provider kind when base_url is
// empty ("" for openai-compatible, which must name its server).
func DefaultBaseURL(kind string) string {
	switch kind {
	case KindOpenAI:
		return "https://api.openai.com/v1"
	case KindAnthropic:
		return "https://api.anthropic.com/v1"
	case KindGemini:
		return "https://generativelanguage.googleapis.com/v1beta"
	}
	return ""
}

// Validate returns every problem of c, joined, each naming the field
// (llm.providers[1].kind: ...) and the fix.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("llm.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	providers := map[string]ProviderConfig{}
	for i, p := range c.Providers {
		f := fmt.Sprintf("providers[%d]", i)
		if !nameRE.MatchString(p.Name) {
			bad(f+".name", "%q is not a valid name; use letters, digits, . _ - (e.g. openai)", p.Name)
		} else if _, dup := providers[p.Name]; dup {
			bad(f+".name", "%q is declared twice", p.Name)
		}
		providers[p.Name] = p
		switch p.Kind {
		case KindOpenAI, KindAnthropic, KindGemini, KindOpenAICompatible:
		default:
			bad(f+".kind", "%q is not a provider kind; use openai, anthropic, gemini or openai-compatible", p.Kind)
		}
		base := p.BaseURL
		if base == "" {
			base = DefaultBaseURL(p.Kind)
		}
		if base == "" && p.Kind == KindOpenAICompatible {
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
		if p.APIKeyFile == "" && p.APIKeyEnv == "" && p.Kind != KindOpenAICompatible && p.Kind != "" {
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
	if _, err := c.cacheMaxBytes(); err != nil {
		bad("cache.max_size", "%v", err)
	}
	for m, p := range c.Prices {
		validPrice(bad, "prices."+m, p)
	}
	if c.Defaults.MaxTokens <= 0 {
		bad("defaults.max_tokens", "must be > 0, e.g. 4096")
	}
	return errors.Join(errs...)
}

func validPrice(bad func(string, string, ...any), field string, p Price) {
	if p.Input < 0 || p.Output < 0 || (p.CachedInput != nil && *p.CachedInput < 0) {
		bad(field, "prices must not be negative")
	}
}

func (c *Config) cacheMaxBytes() (int64, error) {
	if c.Cache.MaxSize == "" {
		return 0, fmt.Errorf("required, e.g. 256Mi")
	}
	q, err := manifest.ParseQuantity(c.Cache.MaxSize)
	return int64(q), err
}

func (c *Config) provider(name string) (ProviderConfig, bool) {
	for _, p := range c.Providers {
		if p.Name == name {
			return p, true
		}
	}
	return ProviderConfig{}, false
}
