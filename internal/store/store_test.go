package store

import (
	"context"
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
