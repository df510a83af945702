package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
)

// dsnReadOnly opens path without writing to it: read-only beside a daemon
// that has it open (its WAL files exist), immutable otherwise (nothing
// writes it; SQLite then needs no -shm file).
func dsnReadOnly(path string, live bool) string {
	if live {
		return "file:" + path + "?mode=ro&_pragma=busy_timeout(5000)"
	}
	return "file:" + path + "?mode=ro&immutable=1"
}

// OpenReadOnly opens the database of a stopped daemon for reading
// (`cortexd ops` when no daemon runs). Writes fail.
func OpenReadOnly(path string) (*Store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", dsnReadOnly(path, false))
	if err != nil {
		return nil, fmt.Errorf("open state db %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	return &Store{db: db}, nil
}

// QuickCheck runs SQLite's quick_check on the file at path through a new
// read-only connection (so it reads what is on disk, not a cache). live
// says a daemon has the database open. It returns the problems SQLite
// lists, none when the database is sound.
func QuickCheck(ctx context.Context, path string, live bool) ([]string, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", dsnReadOnly(path, live))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	rows, err := db.QueryContext(ctx, `PRAGMA quick_check`)
	if err != nil {
		return []string{err.Error()}, nil
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return append(problems, err.Error()), nil
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		problems = append(problems, err.Error())
	}
	return problems, nil
}

// SalvageReport says what Salvage kept.
type SalvageReport struct {
	// Copied and Lost count rows by table; Lost is known only where the
	// table's row count could still be read.
	Copied map[string]int `json:"copied"`
	Errors []string       `json:"errors,omitempty"`
}

func (r SalvageReport) String() string {
	var parts []string
	for _, t := range []string{"projects", "agents", "events"} {
		parts = append(parts, fmt.Sprintf("%s %d", t, r.Copied[t]))
	}
	s := "rows kept: " + strings.Join(parts, ", ")
	if len(r.Errors) > 0 {
		s += "; unreadable: " + strings.Join(r.Errors, "; ")
	}
	return s
}

// Salvage copies every row it can read from the (damaged) database at src,
// which no daemon may have open, into a new database at dst (which must
// not exist), made with the current schema. Each table is read forward
// by rowid until a damaged page stops it, then backward from the end to
// the damage, so rows on both sides of it are kept.
func Salvage(ctx context.Context, src, dst string) (SalvageReport, error) {
	rep := SalvageReport{Copied: map[string]int{}}
	if _, err := os.Stat(dst); err == nil {
		return rep, fmt.Errorf("%s exists", dst)
	}
	in, err := sql.Open("sqlite", dsnReadOnly(src, false))
	if err != nil {
		return rep, err
	}
	defer in.Close()
	in.SetMaxOpenConns(1)
	out, err := Open(dst)
	if err != nil {
		return rep, err
	}
	defer out.Close()
	for _, table := range []string{"projects", "agents", "events"} {
		cols, err := commonColumns(ctx, in, out.db, table)
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", table, err))
			continue
		}
		n, errs := copyTable(ctx, in, out.db, table, cols)
		rep.Copied[table] = n
		rep.Errors = append(rep.Errors, errs...)
	}
	return rep, nil
}

func columns(ctx context.Context, db *sql.DB, table string) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

func commonColumns(ctx context.Context, in, out *sql.DB, table string) ([]string, error) {
	src, err := columns(ctx, in, table)
	if err != nil {
		return nil, fmt.Errorf("read its columns: %w", err)
	}
	if len(src) == 0 {
		return nil, errors.New("no such table in the damaged database")
	}
	dst, err := columns(ctx, out, table)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, c := range src {
		have[c] = true
	}
	var cols []string
	for _, c := range dst {
		if have[c] {
			cols = append(cols, c)
		}
	}
	return cols, nil
}

// copyTable copies what it can read of table, forward then backward.
func copyTable(ctx context.Context, in, out *sql.DB, table string, cols []string) (int, []string) {
	list := strings.Join(cols, ", ")
	ins := fmt.Sprintf("INSERT OR IGNORE INTO %s (%s) VALUES (%s)", table, list, strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", "))
	copied := 0
	var errs []string
	var last int64 = -1 << 62
	scan := func(query string, args ...any) (int64, error) {
		rows, err := in.QueryContext(ctx, query, args...)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		var first int64
		seen := false
		for rows.Next() {
			vals := make([]any, len(cols)+1)
			ptrs := make([]any, len(vals))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				return first, err
			}
			id, _ := vals[0].(int64)
			if !seen {
				first, seen = id, true
			}
			last = id
			if _, err := out.ExecContext(ctx, ins, vals[1:]...); err != nil {
				return first, err
			}
			copied++
		}
		return first, rows.Err()
	}
	_, err := scan(fmt.Sprintf("SELECT rowid, %s FROM %s ORDER BY rowid", list, table))
	if err == nil {
		return copied, nil
	}
	errs = append(errs, fmt.Sprintf("%s after rowid %d: %v", table, last, err))
	stop := last
	if _, err := scan(fmt.Sprintf("SELECT rowid, %s FROM %s WHERE rowid > ? ORDER BY rowid DESC", list, table), stop); err != nil {
		errs = append(errs, fmt.Sprintf("%s from the end: %v", table, err))
	}
	return copied, errs
}
