package bus

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cortexrt/cortex/internal/bus/bustest"
)

// TestRemoveProject: after RemoveProject, a project of the same name (with
// an agent of the same name) finds its durable channel empty and its
// counters gone, while another project keeps what it stored.
func TestRemoveProject(t *testing.T) {
	s := newServer(t, Config{}, "")
	dir := sockDir(t)
	ctx := context.Background()
	pol := Policy{Durable: []string{"jobs"}}
	for _, p := range []string{"gone", "kept"} {
		path := filepath.Join(dir, p+"-old.sock")
		att, err := s.ServeAgent(ctx, Identity{Project: p, Agent: "worker"}, pol, path, -1, -1)
		if err != nil {
			t.Fatal(err)
		}
		c := dial(t, path)
		mustSubscribe(t, c, "jobs") // creates the agent's cursor
		mustPublish(t, c, "jobs", map[string]any{"old": p})
		c.Close()
		att.Close()
	}
	if err := s.RemoveProject(ctx, "gone"); err != nil {
		t.Fatalf("RemoveProject: %v", err)
	}
	for _, st := range s.Stats() {
		if st.Project == "gone" {
			t.Errorf("stats still list the removed project's %+v", st)
		}
	}
	gone := dial(t, attach(t, s, dir, "gone", "worker", pol))
	kept := dial(t, attach(t, s, dir, "kept", "worker", pol))
	if err := s.Publish(ctx, "gone", "jobs", []byte(`{"marker":"new"}`)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*bustest.Client{gone, kept} {
		mustSubscribe(t, c, "jobs")
	}
	for _, tc := range []struct {
		project string
		c       *bustest.Client
		want    string
	}{
		{"gone", gone, `{"marker":"new"}`}, // not the removed project's message
		{"kept", kept, `{"old":"kept"}`},
	} {
		m, err := tc.c.Next(wait)
		if err != nil || string(m.Payload) != tc.want {
			t.Errorf("%s: first message %+v %v, want payload %s", tc.project, m, err, tc.want)
		}
	}
}
