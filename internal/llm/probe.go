package llm

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"github.com/cortexrt/cortex/internal/config"
)

// ProviderProbe is one provider's answer to a models call.
type ProviderProbe struct {
	Provider string
	Kind     string
	URL      string
	Status   int // HTTP status; 0 when the call failed
	Took     time.Duration
	Err      error // transport error, or a status that says the key is refused
}

// anthropicAPIVersion is the version header Anthropic requires.
const anthropicAPIVersion = "2023-06-01"

// ProbeProviders makes each provider's cheapest authenticated call (GET
// models) with its key, in parallel, and reports what each answered. It
// never returns the key or the answer's body. A 401 or 403 is an error
// (the key is refused); another status proves the provider is reachable.
func (g *Gateway) ProbeProviders(ctx context.Context) []ProviderProbe {
	names := make([]string, 0, len(g.providers))
	for n := range g.providers {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]ProviderProbe, len(names))
	done := make(chan struct{}, len(names))
	for i, n := range names {
		go func() {
			defer func() { done <- struct{}{} }()
			p := g.providers[n]
			pr := ProviderProbe{Provider: n, Kind: p.Kind, URL: p.BaseURL + "/models"}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, pr.URL, nil)
			if err != nil {
				pr.Err = err
				out[i] = pr
				return
			}
			for k, v := range p.Headers {
				req.Header.Set(k, v)
			}
			if k := p.Key.Reveal(); k != "" {
				switch p.Kind {
				case config.ProviderAnthropic:
					req.Header.Set("x-api-key", k)
					req.Header.Set("anthropic-version", anthropicAPIVersion)
				case config.ProviderGemini:
					req.Header.Set("x-goog-api-key", k)
				default:
					req.Header.Set("Authorization", "Bearer "+k)
				}
			}
			start := time.Now()
			resp, err := p.Client.Do(req)
			pr.Took = time.Since(start)
			if err != nil {
				pr.Err = fmt.Errorf("%s", p.Scrub(err.Error()))
				out[i] = pr
				return
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			pr.Status = resp.StatusCode
			if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
				pr.Err = fmt.Errorf("the provider refused the key (%s)", resp.Status)
			}
			out[i] = pr
		}()
	}
	for range names {
		<-done
	}
	return out
}
