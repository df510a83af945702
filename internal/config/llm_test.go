package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultLLMValid(t *testing.T) {
	c := DefaultLLM()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestLLM decodes testdata/llm/<file> as the llm: section of a config file.
func TestLLM(t *testing.T) {
	cases := []struct {
		name    string
		file    string
		wantErr []string
		check   func(*testing.T, LLM)
	}{
		{name: "the brief's shape", file: "brief.yaml", check: func(t *testing.T, c LLM) {
			if len(c.Providers) != 1 || c.Providers[0].APIKeyFile != "/etc/cortex/keys/openai" || c.Aliases["fast"].Targets[0].Model != "gpt-4o-mini" {
				t.Errorf("%+v", c)
			}
			if c.Cache.TTL != time.Hour || c.Prices["gpt-4o"].Output != 10 {
				t.Errorf("defaults lost: %+v", c.Cache)
			}
		}},
		{name: "full", file: "full.yaml", check: func(t *testing.T, c LLM) {
			smart := c.Aliases["smart"]
			if smart.Strategy != StrategyLowestLatency || len(smart.Targets) != 3 || smart.Targets[1].Timeout != 20*time.Second {
				t.Errorf("smart %+v", smart)
			}
			if *c.Aliases["local"].Cache != false || c.Routing.Cooldown != time.Minute || c.Cache.MaxSize != 1<<30 {
				t.Errorf("%+v %+v", c.Routing, c.Cache)
			}
			if p := c.Prices["my-finetune"]; p.Input != 1 || p.Output != 2 {
				t.Errorf("custom price %+v", p)
			}
			if _, ok := c.Prices["gpt-4o-mini"]; !ok {
				t.Errorf("config prices replaced the default table instead of merging")
			}
		}},
		{name: "unknown field", file: "unknown.yaml", wantErr: []string{"config.yaml:5:7: llm.providers[0].api_key: unknown field; known fields: name, kind, base_url, api_key_file, api_key_env, headers, timeout"}},
		{name: "invalid", file: "invalid.yaml", wantErr: []string{
			`llm.providers[0].kind: "azure" is not a provider kind`,
			"llm.providers[1]: set api_key_file or api_key_env, not both",
			"llm.providers[2].base_url: required for openai-compatible",
			"llm.providers[3]: kind anthropic needs api_key_file",
			`llm.aliases.fast.targets[0].provider: "nope" is not a declared provider`,
			`llm.aliases.fast.strategy: "random"`,
			"llm.aliases.empty.targets: an alias needs at least one target",
			`config.yaml:15:15: llm.cache.max_size: "2GB" is not a quantity; use Mi or Gi, e.g. 2Gi`,
		}},
		{name: "bad duration", file: "duration.yaml", wantErr: []string{`config.yaml:3:15: llm.routing.cooldown: "soon" is not a duration; write e.g. 10s or 500ms`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "llm", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			in := "llm:\n  " + strings.ReplaceAll(strings.TrimSpace(string(data)), "\n", "\n  ") + "\n"
			cfg, err := check(strings.NewReader(in), "config.yaml")
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatal("no error")
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q:\n%v", w, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, cfg.LLM)
		})
	}
}
