package llm

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/llm/canon"
	"github.com/cortexrt/cortex/internal/manifest"
)

// meter counts usage and enforces budgets. Rows are added in memory and
// written to the store by the gateway's flusher (and on Close); today's
// totals per agent and per project are kept in memory for budget checks
// and reloaded from the store at start.
type meter struct {
	store *store
	now   func() time.Time

	mu      sync.Mutex
	pending map[usageKey]*UsageRow
	tallies map[tallyKey]*tally
	buckets map[[2]string]*bucket
}

// tallyKey is one day of one agent, or of a whole project when agent is "".
type tallyKey struct{ day, project, agent string }

type tally struct {
	tokens   int64
	dollars  float64
	requests int64
}

// bucket is a token bucket refilled at rpm per minute, holding at most rpm.
type bucket struct {
	tokens float64
	last   time.Time
	rpm    int
}

func (b *bucket) refill(now time.Time, rpm int) {
	if b.rpm != rpm {
		b.rpm = rpm
		if b.tokens > float64(rpm) {
			b.tokens = float64(rpm)
		}
	}
	b.tokens = math.Min(float64(rpm), b.tokens+now.Sub(b.last).Minutes()*float64(rpm))
	b.last = now
}

func dayOf(t time.Time) string { return t.UTC().Format("2006-01-02") }

func newMeter(ctx context.Context, st *store, now func() time.Time) (*meter, error) {
	m := &meter{store: st, now: now, pending: map[usageKey]*UsageRow{}, tallies: map[tallyKey]*tally{}, buckets: map[[2]string]*bucket{}}
	day := dayOf(now())
	totals, err := st.dayTotals(ctx, day)
	if err != nil {
		return nil, err
	}
	for k, r := range totals {
		m.addTally(tallyKey{day, k[0], k[1]}, r)
		m.addTally(tallyKey{day, k[0], ""}, r)
	}
	return m, nil
}

func (m *meter) addTally(k tallyKey, r *UsageRow) {
	t := m.tallies[k]
	if t == nil {
		t = &tally{}
		m.tallies[k] = t
	}
	t.tokens += r.InputTokens + r.OutputTokens
	t.dollars += r.CostUSD
	t.requests += r.Requests
}

// record adds one request's usage.
func (m *meter) record(k usageKey, r UsageRow) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pending[k]
	if p == nil {
		p = &UsageRow{}
		m.pending[k] = p
	}
	p.add(&r)
	m.addTally(tallyKey{k.Day, k.Project, k.Agent}, &r)
	m.addTally(tallyKey{k.Day, k.Project, ""}, &r)
}

// flush writes pending rows. On failure they are kept for the next flush.
func (m *meter) flush(ctx context.Context) error {
	m.mu.Lock()
	rows := m.pending
	m.pending = map[usageKey]*UsageRow{}
	today := dayOf(m.now())
	for k := range m.tallies {
		if k.day < today {
			delete(m.tallies, k)
		}
	}
	m.mu.Unlock()
	if err := m.store.addUsage(ctx, rows); err != nil {
		m.mu.Lock()
		for k, r := range rows {
			if p := m.pending[k]; p != nil {
				p.add(r)
			} else {
				m.pending[k] = r
			}
		}
		m.mu.Unlock()
		return err
	}
	return nil
}

// budgetError is a refusal because a budget is spent.
type budgetError struct {
	msg        string
	retryAfter time.Duration
}

func (e *budgetError) Error() string { return e.msg }

// admit checks the agent's and the project's budgets before a request and
// takes one request from their per-minute allowance.
func (m *meter) admit(project, agent string, ab, pb *manifest.LLMBudget) error {
	now := m.now()
	day := dayOf(now)
	midnight := now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	untilMidnight := midnight.Sub(now)
	m.mu.Lock()
	defer m.mu.Unlock()
	check := func(who string, b *manifest.LLMBudget, k tallyKey) error {
		if b == nil {
			return nil
		}
		t := m.tallies[k]
		if t == nil {
			t = &tally{}
		}
		if b.TokensPerDay > 0 && t.tokens >= b.TokensPerDay {
			return &budgetError{retryAfter: untilMidnight, msg: fmt.Sprintf(
				"llm budget exceeded: %s has used %d of its %d tokens_per_day today (UTC); it resets at 00:00 UTC, in %s",
				who, t.tokens, b.TokensPerDay, untilMidnight.Round(time.Minute))}
		}
		if b.DollarsPerDay > 0 && t.dollars >= b.DollarsPerDay {
			return &budgetError{retryAfter: untilMidnight, msg: fmt.Sprintf(
				"llm budget exceeded: %s has spent $%.4f of its $%.2f dollars_per_day today (UTC); it resets at 00:00 UTC, in %s",
				who, t.dollars, b.DollarsPerDay, untilMidnight.Round(time.Minute))}
		}
		return nil
	}
	agentWho := "agent " + project + "/" + agent
	projectWho := "project " + project
	if err := check(agentWho, ab, tallyKey{day, project, agent}); err != nil {
		return err
	}
	if err := check(projectWho, pb, tallyKey{day, project, ""}); err != nil {
		return err
	}
	var takes []*bucket
	for _, x := range []struct {
		b   *manifest.LLMBudget
		key [2]string
		who string
	}{{ab, [2]string{project, agent}, agentWho}, {pb, [2]string{project, ""}, projectWho}} {
		if x.b == nil || x.b.RequestsPerMinute <= 0 {
			continue
		}
		bk := m.buckets[x.key]
		if bk == nil {
			bk = &bucket{tokens: float64(x.b.RequestsPerMinute), last: now, rpm: x.b.RequestsPerMinute}
			m.buckets[x.key] = bk
		}
		bk.refill(now, x.b.RequestsPerMinute)
		if bk.tokens < 1 {
			wait := time.Duration((1 - bk.tokens) / float64(x.b.RequestsPerMinute) * float64(time.Minute))
			return &budgetError{retryAfter: wait, msg: fmt.Sprintf(
				"llm budget exceeded: %s is over its requests_per_minute of %d; retry in %s",
				x.who, x.b.RequestsPerMinute, wait.Round(100*time.Millisecond))}
		}
		takes = append(takes, bk)
	}
	for _, b := range takes {
		b.tokens--
	}
	return nil
}

// forget drops an agent's rate bucket (its daily tallies stay: a restarted
// agent keeps what it spent today).
func (m *meter) forget(project, agent string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.buckets, [2]string{project, agent})
}

// priceFor finds the price of model: the target's own, then the table
// (exact name, then the longest key the name starts with, so dated model
// names use their family's price). Models of openai-compatible providers
// are free unless priced. ok is false when nothing is known.
func priceFor(table map[string]config.Price, kind, model string, own *config.Price) (config.Price, bool) {
	if own != nil {
		return *own, true
	}
	name := strings.TrimPrefix(model, "models/")
	if p, ok := table[name]; ok {
		return p, true
	}
	best := ""
	for k := range table {
		if strings.HasPrefix(name, k) && len(k) > len(best) {
			best = k
		}
	}
	if best != "" {
		return table[best], true
	}
	if kind == config.ProviderOpenAICompatible {
		return config.Price{}, true
	}
	return config.Price{}, false
}

// cost prices usage in USD. Cache reads are charged at CachedInput when
// set, other input (cache writes included) at Input.
func cost(p config.Price, u canon.Usage) float64 {
	in := float64(u.InputTokens) * p.Input
	if p.CachedInput != nil {
		in = float64(u.InputTokens-u.CacheReadTokens)*p.Input + float64(u.CacheReadTokens)**p.CachedInput
	}
	return (in + float64(u.OutputTokens)*p.Output) / 1e6
}
