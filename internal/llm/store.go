package llm

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cortexrt/cortex/internal/manifest"
	_ "modernc.org/sqlite" // pure-Go SQLite driver
)

// store persists what must survive a daemon restart: agent registrations
// (so reattached agents keep working tokens), project budgets, and usage by
// day, project, agent, alias and model. The file holds agent tokens, so it
// is created 0600.
type store struct {
	db *sql.DB
}

const storeSchema = `
CREATE TABLE IF NOT EXISTS agents (
	project TEXT NOT NULL,
	agent   TEXT NOT NULL,
	token   TEXT NOT NULL UNIQUE,
	aliases TEXT NOT NULL,
	budget  TEXT NOT NULL,
	PRIMARY KEY (project, agent)
);
CREATE TABLE IF NOT EXISTS projects (
	project TEXT PRIMARY KEY,
	budget  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS usage (
	day      TEXT NOT NULL,
	project  TEXT NOT NULL,
	agent    TEXT NOT NULL,
	alias    TEXT NOT NULL,
	provider TEXT NOT NULL,
	model    TEXT NOT NULL,
	requests INTEGER NOT NULL DEFAULT 0,
	errors   INTEGER NOT NULL DEFAULT 0,
	cache_hits INTEGER NOT NULL DEFAULT 0,
	input_tokens INTEGER NOT NULL DEFAULT 0,
	output_tokens INTEGER NOT NULL DEFAULT 0,
	cache_read_tokens INTEGER NOT NULL DEFAULT 0,
	cache_write_tokens INTEGER NOT NULL DEFAULT 0,
	cost_usd REAL NOT NULL DEFAULT 0,
	PRIMARY KEY (day, project, agent, alias, provider, model)
);`

func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create llm state dir: %w", err)
	}
	path := filepath.Join(dir, "llm.db")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open llm state: %w", err)
	}
	f.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("open llm state: %w", err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, fmt.Errorf("open llm state %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(storeSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("init llm state %s: %w", path, err)
	}
	return &store{db: db}, nil
}

func (s *store) close() error { return s.db.Close() }

type storedAgent struct {
	project, agent, token string
	aliases               []string
	budget                *manifest.LLMBudget
}

func (s *store) saveAgent(a storedAgent) error {
	al, _ := json.Marshal(a.aliases)
	bu, _ := json.Marshal(a.budget)
	_, err := s.db.Exec(`INSERT INTO agents(project, agent, token, aliases, budget) VALUES(?,?,?,?,?)
		ON CONFLICT(project, agent) DO UPDATE SET token=excluded.token, aliases=excluded.aliases, budget=excluded.budget`,
		a.project, a.agent, a.token, string(al), string(bu))
	if err != nil {
		return fmt.Errorf("save llm agent %s/%s: %w", a.project, a.agent, err)
	}
	return nil
}

func (s *store) deleteAgent(project, agent string) error {
	_, err := s.db.Exec(`DELETE FROM agents WHERE project=? AND agent=?`, project, agent)
	return err
}

func (s *store) agents() ([]storedAgent, error) {
	rows, err := s.db.Query(`SELECT project, agent, token, aliases, budget FROM agents`)
	if err != nil {
		return nil, fmt.Errorf("load llm agents: %w", err)
	}
	defer rows.Close()
	var out []storedAgent
	for rows.Next() {
		var a storedAgent
		var al, bu string
		if err := rows.Scan(&a.project, &a.agent, &a.token, &al, &bu); err != nil {
			return nil, err
		}
		_ = json.Unmarshal([]byte(al), &a.aliases)
		_ = json.Unmarshal([]byte(bu), &a.budget)
		out = append(out, a)
	}
	return out, rows.Err()
}

func (s *store) saveProject(project string, b *manifest.LLMBudget) error {
	if b == nil {
		_, err := s.db.Exec(`DELETE FROM projects WHERE project=?`, project)
		return err
	}
	bu, _ := json.Marshal(b)
	_, err := s.db.Exec(`INSERT INTO projects(project, budget) VALUES(?,?) ON CONFLICT(project) DO UPDATE SET budget=excluded.budget`, project, string(bu))
	return err
}

func (s *store) projects() (map[string]*manifest.LLMBudget, error) {
	rows, err := s.db.Query(`SELECT project, budget FROM projects`)
	if err != nil {
		return nil, fmt.Errorf("load llm project budgets: %w", err)
	}
	defer rows.Close()
	out := map[string]*manifest.LLMBudget{}
	for rows.Next() {
		var p, bu string
		if err := rows.Scan(&p, &bu); err != nil {
			return nil, err
		}
		var b manifest.LLMBudget
		if json.Unmarshal([]byte(bu), &b) == nil {
			out[p] = &b
		}
	}
	return out, rows.Err()
}

// usageKey identifies one row of the usage table.
type usageKey struct {
	Day, Project, Agent, Alias, Provider, Model string
}

// UsageRow is usage summed over the dimensions of a report; dimensions not
// grouped by are empty. The admin API answers it as an api.LLMUsageRow.
type UsageRow struct {
	Day              string
	Project          string
	Agent            string
	Alias            string
	Provider         string
	Model            string
	Requests         int64
	Errors           int64
	CacheHits        int64
	InputTokens      int64
	OutputTokens     int64
	CacheReadTokens  int64
	CacheWriteTokens int64
	CostUSD          float64
}

func (r *UsageRow) add(o *UsageRow) {
	r.Requests += o.Requests
	r.Errors += o.Errors
	r.CacheHits += o.CacheHits
	r.InputTokens += o.InputTokens
	r.OutputTokens += o.OutputTokens
	r.CacheReadTokens += o.CacheReadTokens
	r.CacheWriteTokens += o.CacheWriteTokens
	r.CostUSD += o.CostUSD
}

// addUsage adds rows to the table in one transaction.
func (s *store) addUsage(ctx context.Context, rows map[usageKey]*UsageRow) error {
	if len(rows) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("write llm usage: %w", err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `INSERT INTO usage(day, project, agent, alias, provider, model, requests, errors, cache_hits,
		input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT(day, project, agent, alias, provider, model) DO UPDATE SET
		requests=requests+excluded.requests, errors=errors+excluded.errors, cache_hits=cache_hits+excluded.cache_hits,
		input_tokens=input_tokens+excluded.input_tokens, output_tokens=output_tokens+excluded.output_tokens,
		cache_read_tokens=cache_read_tokens+excluded.cache_read_tokens, cache_write_tokens=cache_write_tokens+excluded.cache_write_tokens,
		cost_usd=cost_usd+excluded.cost_usd`)
	if err != nil {
		return fmt.Errorf("write llm usage: %w", err)
	}
	defer st.Close()
	for k, r := range rows {
		if _, err := st.ExecContext(ctx, k.Day, k.Project, k.Agent, k.Alias, k.Provider, k.Model, r.Requests, r.Errors, r.CacheHits,
			r.InputTokens, r.OutputTokens, r.CacheReadTokens, r.CacheWriteTokens, r.CostUSD); err != nil {
			return fmt.Errorf("write llm usage: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("write llm usage: %w", err)
	}
	return nil
}

// UsageQuery filters and groups a usage report. Empty filters match all;
// Since and Until are inclusive days (YYYY-MM-DD, UTC). GroupBy lists the
// dimensions kept: day, project, agent, alias, provider, model (default
// day, project, agent, model).
type UsageQuery struct {
	Project, Agent, Alias, Model string
	Since, Until                 string
	GroupBy                      []string
}

var usageDims = map[string]bool{"day": true, "project": true, "agent": true, "alias": true, "provider": true, "model": true}

func (q *UsageQuery) validate() error {
	if len(q.GroupBy) == 0 {
		q.GroupBy = []string{"day", "project", "agent", "model"}
	}
	seen := map[string]bool{}
	for _, d := range q.GroupBy {
		if !usageDims[d] {
			return fmt.Errorf("group by %q; use day, project, agent, alias, provider or model", d)
		}
		if seen[d] {
			return fmt.Errorf("group by %q twice", d)
		}
		seen[d] = true
	}
	for _, d := range []string{q.Since, q.Until} {
		if d != "" && !validDay(d) {
			return fmt.Errorf("%q is not a day; write YYYY-MM-DD", d)
		}
	}
	return nil
}

func validDay(d string) bool {
	if len(d) != 10 || d[4] != '-' || d[7] != '-' {
		return false
	}
	for i, c := range d {
		if i != 4 && i != 7 && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// usage runs a report query. Group columns come from a fixed set, never
// from input, so building the SQL text is safe.
func (s *store) usage(ctx context.Context, q UsageQuery) ([]UsageRow, error) {
	var where []string
	var args []any
	for _, f := range []struct{ col, v string }{{"project", q.Project}, {"agent", q.Agent}, {"alias", q.Alias}, {"model", q.Model}} {
		if f.v != "" {
			where = append(where, f.col+" = ?")
			args = append(args, f.v)
		}
	}
	if q.Since != "" {
		where = append(where, "day >= ?")
		args = append(args, q.Since)
	}
	if q.Until != "" {
		where = append(where, "day <= ?")
		args = append(args, q.Until)
	}
	sel := make([]string, 0, 6)
	for _, d := range []string{"day", "project", "agent", "alias", "provider", "model"} {
		if slices.Contains(q.GroupBy, d) {
			sel = append(sel, d)
		} else {
			sel = append(sel, "''")
		}
	}
	text := "SELECT " + strings.Join(sel, ", ") + `, SUM(requests), SUM(errors), SUM(cache_hits), SUM(input_tokens), SUM(output_tokens),
		SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(cost_usd) FROM usage`
	if len(where) > 0 {
		text += " WHERE " + strings.Join(where, " AND ")
	}
	if len(q.GroupBy) > 0 {
		text += " GROUP BY " + strings.Join(q.GroupBy, ", ") + " ORDER BY " + strings.Join(q.GroupBy, ", ")
	}
	rows, err := s.db.QueryContext(ctx, text, args...)
	if err != nil {
		return nil, fmt.Errorf("query llm usage: %w", err)
	}
	defer rows.Close()
	var out []UsageRow
	for rows.Next() {
		var r UsageRow
		var cost sql.NullFloat64
		var n [7]sql.NullInt64
		if err := rows.Scan(&r.Day, &r.Project, &r.Agent, &r.Alias, &r.Provider, &r.Model,
			&n[0], &n[1], &n[2], &n[3], &n[4], &n[5], &n[6], &cost); err != nil {
			return nil, fmt.Errorf("query llm usage: %w", err)
		}
		if !n[0].Valid {
			continue // an empty table summed without grouping
		}
		r.Requests, r.Errors, r.CacheHits, r.InputTokens, r.OutputTokens, r.CacheReadTokens, r.CacheWriteTokens =
			n[0].Int64, n[1].Int64, n[2].Int64, n[3].Int64, n[4].Int64, n[5].Int64, n[6].Int64
		r.CostUSD = cost.Float64
		out = append(out, r)
	}
	return out, rows.Err()
}

// dayTotals returns, for one day, tokens, dollars and requests per
// project/agent, to seed budget accounting after a restart.
func (s *store) dayTotals(ctx context.Context, day string) (map[[2]string]*UsageRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT project, agent, SUM(requests), SUM(input_tokens), SUM(output_tokens), SUM(cost_usd)
		FROM usage WHERE day = ? GROUP BY project, agent`, day)
	if err != nil {
		return nil, fmt.Errorf("load llm usage: %w", err)
	}
	defer rows.Close()
	out := map[[2]string]*UsageRow{}
	for rows.Next() {
		var p, a string
		r := &UsageRow{}
		if err := rows.Scan(&p, &a, &r.Requests, &r.InputTokens, &r.OutputTokens, &r.CostUSD); err != nil {
			return nil, err
		}
		out[[2]string{p, a}] = r
	}
	return out, rows.Err()
}

var errClosed = errors.New("llm gateway is closed")
