// Package store keeps the daemon's durable state in SQLite (modernc.org/sqlite,
// pure Go): projects, agents, their current state and their state history.
// It knows nothing of processes or cgroups; the supervisor decides what the
// rows mean. Every method is safe for concurrent use.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
	_ "modernc.org/sqlite"
)

const schema = `
CREATE TABLE IF NOT EXISTS projects (
	name        TEXT PRIMARY KEY,
	digest      TEXT NOT NULL,
	bundle_dir  TEXT NOT NULL,
	source_dir  TEXT NOT NULL DEFAULT '',
	manifest    TEXT NOT NULL,
	owner_uid   INTEGER NOT NULL DEFAULT 0,
	owner_gid   INTEGER NOT NULL DEFAULT 0,
	created_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS agents (
	project     TEXT NOT NULL,
	name        TEXT NOT NULL,
	spec        TEXT NOT NULL,
	state       TEXT NOT NULL,
	reason      TEXT NOT NULL DEFAULT '',
	exit_code   INTEGER,
	pid         INTEGER NOT NULL DEFAULT 0,
	pid_start   INTEGER NOT NULL DEFAULT 0,
	restarts    INTEGER NOT NULL DEFAULT 0,
	cgroup      TEXT NOT NULL DEFAULT '',
	started_at  INTEGER NOT NULL DEFAULT 0,
	finished_at INTEGER NOT NULL DEFAULT 0,
	updated_at  INTEGER NOT NULL,
	desired     TEXT NOT NULL DEFAULT 'running',
	uid         INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (project, name)
);
CREATE TABLE IF NOT EXISTS events (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	project   TEXT NOT NULL,
	agent     TEXT NOT NULL,
	run       INTEGER NOT NULL,
	state     TEXT NOT NULL,
	reason    TEXT NOT NULL DEFAULT '',
	exit_code INTEGER,
	time      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_agent ON events(project, agent, id);
`

// migrations bring a database an older daemon made up to date, in order;
// the database's user_version counts those it has. Never edit one that
// has shipped: append.
var migrations = []string{
	// 1: the identity of a project's source directory, recorded when the
	// project is created and checked at every start.
	`ALTER TABLE projects ADD COLUMN source_dev INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE projects ADD COLUMN source_ino INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE projects ADD COLUMN source_uid INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE projects ADD COLUMN source_mnt_id INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE projects ADD COLUMN source_boot_id TEXT NOT NULL DEFAULT '';`,
}

// SchemaVersion is the user_version of a database this store has migrated.
var SchemaVersion = len(migrations)

// Project is one swarm the daemon knows.
type Project struct {
	Name      string          `json:"name"`
	Digest    string          `json:"digest"`
	BundleDir string          `json:"bundle_dir"`
	SourceDir string          `json:"source_dir,omitempty"`
	Manifest  json.RawMessage `json:"manifest"`
	OwnerUID  int             `json:"owner_uid"`
	OwnerGID  int             `json:"owner_gid"`
	// SourceID is what SourceDir was when the project was created; every
	// start checks the directory is still that one. Zero for projects
	// run from a bundle file, and for those an older daemon recorded.
	SourceID  DirIdentity `json:"source_id,omitzero"`
	CreatedAt time.Time   `json:"created_at"`
}

// DirIdentity identifies a directory: device, inode, owner, and the
// mount it was reached through with the boot that mount id belongs to
// (the fields of sandbox.DirIdentity, which converts to it).
type DirIdentity struct {
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
	UID    int    `json:"uid"`
	MntID  uint64 `json:"mnt_id,omitempty"`
	BootID string `json:"boot_id,omitempty"`
}

// Agent is the durable record of one agent.
type Agent struct {
	Project    string          `json:"project"`
	Name       string          `json:"name"`
	Spec       json.RawMessage `json:"spec"` // the resolved agent
	State      string          `json:"state"`
	Reason     string          `json:"reason,omitempty"`
	ExitCode   *int            `json:"exit_code,omitempty"`
	Pid        int             `json:"pid,omitempty"`
	PidStart   uint64          `json:"pid_start,omitempty"` // start time in clock ticks, guards against pid reuse
	Restarts   int             `json:"restarts"`
	Cgroup     string          `json:"cgroup,omitempty"`
	StartedAt  time.Time       `json:"started_at,omitzero"`
	FinishedAt time.Time       `json:"finished_at,omitzero"`
	UpdatedAt  time.Time       `json:"updated_at"`
	// Desired is what the operator last asked for: "running" or "stopped".
	Desired string `json:"desired"`
	// UID is the unprivileged uid the agent runs as (0 = unconfined).
	UID int `json:"uid,omitempty"`
}

// Event is one state transition.
type Event struct {
	ID       int64     `json:"id"`
	Project  string    `json:"project"`
	Agent    string    `json:"agent"`
	Run      int       `json:"run"`
	State    string    `json:"state"`
	Reason   string    `json:"reason,omitempty"`
	ExitCode *int      `json:"exit_code,omitempty"`
	Time     time.Time `json:"time"`
}

// Store is the SQLite state database.
type Store struct {
	db *sql.DB
}

// Open opens (creating if needed) the database at path.
func Open(path string) (*Store, error) {
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(on)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open state db %s: %w", path, err)
	}
	db.SetMaxOpenConns(1) // one writer; sqlite serialises anyway
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("init state db %s: %w", path, err)
	}
	if err := migrate(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate state db %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// migrate applies the migrations the database lacks, each in a
// transaction with its user_version bump.
func migrate(db *sql.DB) error {
	var v int
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		return err
	}
	if v > len(migrations) {
		return errdefs.WithHint(errdefs.New(errdefs.FailedPrecondition, "schema version %d is newer than this cortexd knows (%d)", v, len(migrations)),
			"run the cortexd that made it, or a newer one")
	}
	for ; v < len(migrations); v++ {
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(migrations[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		if _, err := tx.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, v+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// PutProject inserts or replaces a project.
func (s *Store) PutProject(ctx context.Context, p Project) error {
	if p.CreatedAt.IsZero() {
		p.CreatedAt = time.Now()
	}
	id := p.SourceID
	_, err := s.db.ExecContext(ctx, `INSERT INTO projects(name,digest,bundle_dir,source_dir,manifest,owner_uid,owner_gid,created_at,
		source_dev,source_ino,source_uid,source_mnt_id,source_boot_id)
		VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET digest=excluded.digest, bundle_dir=excluded.bundle_dir,
		source_dir=excluded.source_dir, manifest=excluded.manifest, owner_uid=excluded.owner_uid, owner_gid=excluded.owner_gid, created_at=excluded.created_at,
		source_dev=excluded.source_dev, source_ino=excluded.source_ino, source_uid=excluded.source_uid, source_mnt_id=excluded.source_mnt_id,
		source_boot_id=excluded.source_boot_id`,
		p.Name, p.Digest, p.BundleDir, p.SourceDir, string(p.Manifest), p.OwnerUID, p.OwnerGID, ms(p.CreatedAt),
		int64(id.Dev), int64(id.Ino), id.UID, int64(id.MntID), id.BootID)
	if err != nil {
		return fmt.Errorf("put project %s: %w", p.Name, err)
	}
	return nil
}

// SetProjectSource records the identity of a project's source directory
// (for a project an older daemon created without one).
func (s *Store) SetProjectSource(ctx context.Context, name string, id DirIdentity) error {
	res, err := s.db.ExecContext(ctx, `UPDATE projects SET source_dev=?, source_ino=?, source_uid=?, source_mnt_id=?, source_boot_id=? WHERE name=?`,
		int64(id.Dev), int64(id.Ino), id.UID, int64(id.MntID), id.BootID, name)
	if err != nil {
		return fmt.Errorf("record source directory of %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errdefs.New(errdefs.NotFound, "project %q not found", name)
	}
	return nil
}

// GetProject returns a project or a NotFound error.
func (s *Store) GetProject(ctx context.Context, name string) (Project, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+projectCols+` FROM projects WHERE name=?`, name)
	p, err := scanProject(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Project{}, errdefs.New(errdefs.NotFound, "project %q not found", name)
	}
	return p, err
}

// ListProjects returns every project, by name.
func (s *Store) ListProjects(ctx context.Context) ([]Project, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+projectCols+` FROM projects ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	defer rows.Close()
	var out []Project
	for rows.Next() {
		p, err := scanProject(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// DeleteProject removes a project, its agents and their history.
func (s *Store) DeleteProject(ctx context.Context, name string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, q := range []string{`DELETE FROM events WHERE project=?`, `DELETE FROM agents WHERE project=?`, `DELETE FROM projects WHERE name=?`} {
		if _, err := tx.ExecContext(ctx, q, name); err != nil {
			return fmt.Errorf("delete project %s: %w", name, err)
		}
	}
	return tx.Commit()
}

type scanner interface{ Scan(...any) error }

const projectCols = `name,digest,bundle_dir,source_dir,manifest,owner_uid,owner_gid,created_at,source_dev,source_ino,source_uid,source_mnt_id,source_boot_id`

func scanProject(r scanner) (Project, error) {
	var p Project
	var manifest string
	var created, dev, ino, mnt int64
	if err := r.Scan(&p.Name, &p.Digest, &p.BundleDir, &p.SourceDir, &manifest, &p.OwnerUID, &p.OwnerGID, &created,
		&dev, &ino, &p.SourceID.UID, &mnt, &p.SourceID.BootID); err != nil {
		return p, err
	}
	p.SourceID.Dev, p.SourceID.Ino, p.SourceID.MntID = uint64(dev), uint64(ino), uint64(mnt)
	p.Manifest = json.RawMessage(manifest)
	p.CreatedAt = fromMS(created)
	return p, nil
}

// PutAgent inserts or replaces an agent's record.
func (s *Store) PutAgent(ctx context.Context, a Agent) error {
	a.UpdatedAt = time.Now()
	if a.Desired == "" {
		a.Desired = "running"
	}
	var code any
	if a.ExitCode != nil {
		code = *a.ExitCode
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO agents(project,name,spec,state,reason,exit_code,pid,pid_start,restarts,cgroup,started_at,finished_at,updated_at,desired,uid)
		VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(project,name) DO UPDATE SET spec=excluded.spec, state=excluded.state,
		reason=excluded.reason, exit_code=excluded.exit_code, pid=excluded.pid, pid_start=excluded.pid_start, restarts=excluded.restarts,
		cgroup=excluded.cgroup, started_at=excluded.started_at, finished_at=excluded.finished_at, updated_at=excluded.updated_at, desired=excluded.desired, uid=excluded.uid`,
		a.Project, a.Name, string(a.Spec), a.State, a.Reason, code, a.Pid, int64(a.PidStart), a.Restarts, a.Cgroup,
		ms(a.StartedAt), ms(a.FinishedAt), ms(a.UpdatedAt), a.Desired, a.UID)
	if err != nil {
		return fmt.Errorf("put agent %s/%s: %w", a.Project, a.Name, err)
	}
	return nil
}

const agentCols = `project,name,spec,state,reason,exit_code,pid,pid_start,restarts,cgroup,started_at,finished_at,updated_at,desired,uid`

func scanAgent(r scanner) (Agent, error) {
	var a Agent
	var spec string
	var code sql.NullInt64
	var pidStart, started, finished, updated int64
	if err := r.Scan(&a.Project, &a.Name, &spec, &a.State, &a.Reason, &code, &a.Pid, &pidStart, &a.Restarts, &a.Cgroup, &started, &finished, &updated, &a.Desired, &a.UID); err != nil {
		return a, err
	}
	a.Spec = json.RawMessage(spec)
	if code.Valid {
		c := int(code.Int64)
		a.ExitCode = &c
	}
	a.PidStart = uint64(pidStart)
	a.StartedAt, a.FinishedAt, a.UpdatedAt = fromMS(started), fromMS(finished), fromMS(updated)
	return a, nil
}

// GetAgent returns one agent or NotFound.
func (s *Store) GetAgent(ctx context.Context, project, name string) (Agent, error) {
	a, err := scanAgent(s.db.QueryRowContext(ctx, `SELECT `+agentCols+` FROM agents WHERE project=? AND name=?`, project, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Agent{}, errdefs.New(errdefs.NotFound, "agent %s/%s not found", project, name)
	}
	return a, err
}

// ListAgents returns the agents of project, or of every project when
// project is "".
func (s *Store) ListAgents(ctx context.Context, project string) ([]Agent, error) {
	q := `SELECT ` + agentCols + ` FROM agents`
	var args []any
	if project != "" {
		q += ` WHERE project=?`
		args = append(args, project)
	}
	q += ` ORDER BY project, name`
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	defer rows.Close()
	var out []Agent
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// AddEvent appends a state transition.
func (s *Store) AddEvent(ctx context.Context, e Event) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	var code any
	if e.ExitCode != nil {
		code = *e.ExitCode
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO events(project,agent,run,state,reason,exit_code,time) VALUES(?,?,?,?,?,?,?)`,
		e.Project, e.Agent, e.Run, e.State, e.Reason, code, ms(e.Time))
	if err != nil {
		return fmt.Errorf("add event %s/%s: %w", e.Project, e.Agent, err)
	}
	return nil
}

// Events returns an agent's history, oldest first, at most limit (0 = all,
// else the newest limit).
func (s *Store) Events(ctx context.Context, project, agent string, limit int) ([]Event, error) {
	q := `SELECT id,project,agent,run,state,reason,exit_code,time FROM events WHERE project=? AND agent=? ORDER BY id DESC`
	args := []any{project, agent}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("events %s/%s: %w", project, agent, err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var code sql.NullInt64
		var t int64
		if err := rows.Scan(&e.ID, &e.Project, &e.Agent, &e.Run, &e.State, &e.Reason, &code, &t); err != nil {
			return nil, err
		}
		if code.Valid {
			c := int(code.Int64)
			e.ExitCode = &c
		}
		e.Time = fromMS(t)
		out = append(out, e)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, rows.Err()
}
