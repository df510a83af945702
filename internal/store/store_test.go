package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestProjectsAgentsEventsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path)
	p := Project{Name: "swarm", Digest: "sha256:ab", BundleDir: "/b", Manifest: json.RawMessage(`{"project":"swarm"}`)}
	if err := s.PutProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	code := 137
	a := Agent{Project: "swarm", Name: "w", Spec: json.RawMessage(`{}`), State: "failed", Reason: "OOMKilled", ExitCode: &code, Pid: 42, PidStart: 99, Restarts: 2}
	if err := s.PutAgent(ctx, a); err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{"starting", "running", "failed"} {
		if err := s.AddEvent(ctx, Event{Project: "swarm", Agent: "w", State: st}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	s = open(t, path)
	got, err := s.GetAgent(ctx, "swarm", "w")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, got, cmpopts.IgnoreFields(Agent{}, "UpdatedAt", "Desired")); diff != "" {
		t.Errorf("agent (-want +got):\n%s", diff)
	}
	evs, err := s.Events(ctx, "swarm", "w", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].State != "running" || evs[1].State != "failed" {
		t.Errorf("events = %+v", evs)
	}
	ps, _ := s.ListProjects(ctx)
	if len(ps) != 1 || string(ps[0].Manifest) != `{"project":"swarm"}` {
		t.Errorf("projects = %+v", ps)
	}
	if err := s.DeleteProject(ctx, "swarm"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAgent(ctx, "swarm", "w"); !errdefs.IsNotFound(err) {
		t.Errorf("after delete: %v", err)
	}
	if _, err := s.GetProject(ctx, "swarm"); !errdefs.IsNotFound(err) {
		t.Errorf("after delete: %v", err)
	}
}

func TestSourceIdentityRoundTrip(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path)
	// Inodes and mount ids use the whole uint64 on some filesystems.
	id := DirIdentity{Dev: 2049, Ino: 1<<63 + 5, UID: 1001, MntID: 1<<63 + 7, BootID: "b00t"}
	p := Project{Name: "swarm", Digest: "sha256:ab", BundleDir: "/b", SourceDir: "/home/u/p", SourceID: id, Manifest: json.RawMessage(`{}`), OwnerUID: 1001}
	if err := s.PutProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path)
	got, err := s.GetProject(ctx, "swarm")
	if err != nil {
		t.Fatal(err)
	}
	if got.SourceID != id {
		t.Errorf("source identity = %+v, want %+v", got.SourceID, id)
	}
	id2 := DirIdentity{Dev: 1, Ino: 2, UID: 3}
	if err := s.SetProjectSource(ctx, "swarm", id2); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetProject(ctx, "swarm"); got.SourceID != id2 {
		t.Errorf("after SetProjectSource: %+v, want %+v", got.SourceID, id2)
	}
	if err := s.SetProjectSource(ctx, "nope", id2); !errdefs.IsNotFound(err) {
		t.Errorf("SetProjectSource of a missing project: %v, want not found", err)
	}
}

// TestMigrateOldDatabase opens a database as the daemon before schema
// version 1 left it (no source identity columns, user_version 0): its
// projects survive with a zero identity, and a database newer than this
// code is refused.
func TestMigrateOldDatabase(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(schema); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO projects(name,digest,bundle_dir,source_dir,manifest,owner_uid,owner_gid,created_at)
		VALUES('old','sha256:cd','/b','/home/u/p','{}',1001,1001,1)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := open(t, path)
	p, err := s.GetProject(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if p.SourceDir != "/home/u/p" || p.OwnerUID != 1001 || p.SourceID != (DirIdentity{}) {
		t.Errorf("migrated project = %+v", p)
	}
	var v int
	if err := s.db.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil || v != SchemaVersion {
		t.Errorf("user_version = %d (%v), want %d", v, err, SchemaVersion)
	}
	// Opening again applies nothing twice.
	s.Close()
	s = open(t, path)
	if _, err := s.db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(path); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("open of a newer database: %v, want failed precondition", err)
	}
}
