package llm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDefaultConfigValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestParseConfig(t *testing.T) {
	cases := []struct {
		name    string
		file    string
		wantErr []string
		check   func(*testing.T, Config)
	}{
		{name: "the brief's shape", file: "brief.yaml", check: func(t *testing.T, c Config) {
			if len(c.Providers) != 1 || c.Providers[0].APIKeyFile != "/etc/cortex/keys/openai" || c.Aliases["fast"].Targets[0].Model != "gpt-4o-mini" {
				t.Errorf("%+v", c)
			}
			if c.Cache.TTL.D() != time.Hour || c.Prices["gpt-4o"].Output != 10 {
				t.Errorf("defaults lost: %+v", c.Cache)
			}
		}},
		{name: "full", file: "full.yaml", check: func(t *testing.T, c Config) {
			smart := c.Aliases["smart"]
			if smart.Strategy != StrategyLowestLatency || len(smart.Targets) != 3 || smart.Targets[1].Timeout.D() != 20*time.Second {
				t.Errorf("smart %+v", smart)
			}
			if *c.Aliases["local"].Cache != false || c.Routing.Cooldown.D() != time.Minute || c.Cache.MaxSize != "1Gi" {
				t.Errorf("%+v %+v", c.Routing, c.Cache)
			}
			if p := c.Prices["my-finetune"]; p.Input != 1 || p.Output != 2 {
				t.Errorf("custom price %+v", p)
			}
			if _, ok := c.Prices["gpt-4o-mini"]; !ok {
				t.Errorf("config prices replaced the default table instead of merging")
			}
		}},
		{name: "unknown field", file: "unknown.yaml", wantErr: []string{"field api_key not found"}},
		{name: "invalid", file: "invalid.yaml", wantErr: []string{
			`llm.providers[0].kind: "azure" is not a provider kind`,
			"llm.providers[1]: set api_key_file or api_key_env, not both",
			"llm.providers[2].base_url: required for openai-compatible",
			"llm.providers[3]: kind anthropic needs api_key_file",
			`llm.aliases.fast.targets[0].provider: "nope" is not a declared provider`,
			`llm.aliases.fast.strategy: "random"`,
			"llm.aliases.empty.targets: an alias needs at least one target",
			"llm.cache.max_size",
		}},
		{name: "bad duration", file: "duration.yaml", wantErr: []string{"not a duration"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", "config", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			c, err := ParseConfig(f)
			if err == nil {
				err = c.Validate()
			}
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
			tc.check(t, c)
		})
	}
}

func TestPriceLookup(t *testing.T) {
	table := DefaultPrices()
	cases := []struct {
		kind, model string
		own         *Price
		want        Price
		ok          bool
	}{
		{KindOpenAI, "gpt-4o-mini", nil, table["gpt-4o-mini"], true},
		{KindOpenAI, "gpt-4o-mini-2024-07-18", nil, table["gpt-4o-mini"], true},
		{KindOpenAI, "gpt-4o-2024-08-06", nil, table["gpt-4o"], true},
		{KindGemini, "models/gemini-2.0-flash-001", nil, table["gemini-2.0-flash"], true},
		{KindOpenAICompatible, "llama3.2", nil, Price{}, true},
		{KindOpenAI, "mystery", nil, Price{}, false},
		{KindOpenAI, "gpt-4o", &Price{Input: 9}, Price{Input: 9}, true},
	}
	for _, tc := range cases {
		t.Run(tc.model, func(t *testing.T) {
			got, ok := priceFor(table, tc.kind, tc.model, tc.own)
			if ok != tc.ok || cmp.Diff(tc.want, got) != "" {
				t.Errorf("got %+v %v, want %+v %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
