package daemon

import (
	"sort"
	"testing"

	"github.com/cortexrt/cortex/internal/auth"
)

// TestRoutesClassified: every pattern the API's mux serves has its line
// in auth.Routes (a route without one would be admin-only), and every
// line of auth.Routes is served (no stale classification).
func TestRoutesClassified(t *testing.T) {
	d := &Daemon{pipeline: &auth.Pipeline{}}
	d.handler()
	if len(d.patterns) < 20 {
		t.Fatalf("only %d patterns registered", len(d.patterns))
	}
	served := map[string]bool{}
	for _, p := range d.patterns {
		served[p] = true
		if _, ok := auth.Routes.Lookup(p); !ok {
			t.Errorf("route %q is not classified: add it to auth.Routes (internal/auth/routes.go)", p)
		}
	}
	var stale []string
	for p := range auth.Routes {
		if !served[p] {
			stale = append(stale, p)
		}
	}
	sort.Strings(stale)
	for _, p := range stale {
		t.Errorf("auth.Routes classifies %q, which the daemon does not serve", p)
	}
}
