package llm

import (
	"testing"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/google/go-cmp/cmp"
)

func TestPriceLookup(t *testing.T) {
	table := config.DefaultPrices()
	cases := []struct {
		kind, model string
		own         *config.Price
		want        config.Price
		ok          bool
	}{
		{config.ProviderOpenAI, "gpt-4o-mini", nil, table["gpt-4o-mini"], true},
		{config.ProviderOpenAI, "gpt-4o-mini-2024-07-18", nil, table["gpt-4o-mini"], true},
		{config.ProviderOpenAI, "gpt-4o-2024-08-06", nil, table["gpt-4o"], true},
		{config.ProviderGemini, "models/gemini-2.0-flash-001", nil, table["gemini-2.0-flash"], true},
		{config.ProviderOpenAICompatible, "llama3.2", nil, config.Price{}, true},
		{config.ProviderOpenAI, "mystery", nil, config.Price{}, false},
		{config.ProviderOpenAI, "gpt-4o", &config.Price{Input: 9}, config.Price{Input: 9}, true},
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
