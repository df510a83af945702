package auth

import (
	"encoding/binary"
	"net/http"
	"sort"
	"testing"
)

// The identities of the scenarios.
var (
	viewerAll  = Identity{Name: "key:viewer", Auth: AuthKey, UID: -1, Bindings: []Binding{{Role: Viewer}}}
	operatorCI = Identity{Name: "key:ci", Auth: AuthKey, UID: -1, Bindings: []Binding{{Role: Operator, Projects: []string{"ci-*"}}}}
	adminAll   = Identity{Name: "key:admin", Auth: AuthKey, UID: -1, Bindings: []Binding{{Role: Admin}}}
	localUser  = Identity{Name: "uid:1000", Auth: AuthPeer, UID: 1000, Bindings: []Binding{{Role: Operator, Owned: true}}}
)

// Targets: ci-x (owned by uid 1000), prod-y (root's), new-z (absent).
var targets = map[string]Target{
	"ci-x":   {Project: "ci-x", Agent: "a", Exists: true, Owner: 1000},
	"prod-y": {Project: "prod-y", Agent: "a", Exists: true, Owner: 0},
	"new-z":  {Project: "new-z", Agent: "a"},
	"ci-new": {Project: "ci-new", Agent: "a"},
	"":       {},
}

// reference is the table of (identity, route, target) -> status the
// authorization must give: 200 allowed, 403 denied, 404 hidden. It is
// written by hand from the role definitions of docs/security.md.
var reference = []struct {
	id     Identity
	route  string
	target string
	want   int
}{
	// A viewer lists, inspects and reads logs; may not run or act.
	{viewerAll, "GET /v1/projects", "", 200},
	{viewerAll, "GET /v1/agents", "", 200},
	{viewerAll, "GET /v1/agents/{project}/{agent}", "prod-y", 200},
	{viewerAll, "GET /v1/logs", "prod-y", 200},
	{viewerAll, "GET /v1/projects/{project}/attach", "ci-x", 200},
	{viewerAll, "GET /v1/events", "", 200},
	{viewerAll, "GET /v1/bus/{project}/{channel}", "ci-x", 200},
	{viewerAll, "GET /v1/bus/stats", "", 200},
	{viewerAll, "GET /v1/llm/usage", "", 200},
	{viewerAll, "GET /v1/llm/models", "", 200},
	{viewerAll, "POST /v1/projects", "new-z", 403},
	{viewerAll, "POST /v1/agents/{project}/{agent}/kill", "prod-y", 403},
	{viewerAll, "POST /v1/projects/{project}/stop", "ci-x", 403},
	{viewerAll, "DELETE /v1/projects/{project}", "ci-x", 403},
	{viewerAll, "POST /v1/bus/{project}/{channel}", "ci-x", 403},
	{viewerAll, "POST /v1/llm/chat", "", 403},
	{viewerAll, "GET /v1/auth/keys", "", 403},
	{viewerAll, "GET /v1/audit", "", 403},
	{viewerAll, "GET /v1/version", "", 200},
	// An operator bound to ci-* runs and acts on ci-*, cannot see prod-*.
	{operatorCI, "POST /v1/projects", "ci-new", 200},
	{operatorCI, "POST /v1/projects", "ci-x", 200},
	{operatorCI, "POST /v1/projects", "prod-y", 404},
	{operatorCI, "POST /v1/projects", "new-z", 404},
	{operatorCI, "GET /v1/agents/{project}/{agent}", "ci-x", 200},
	{operatorCI, "GET /v1/agents/{project}/{agent}", "prod-y", 404},
	{operatorCI, "GET /v1/agents/{project}/{agent}", "new-z", 404},
	{operatorCI, "POST /v1/agents/{project}/{agent}/kill", "ci-x", 200},
	{operatorCI, "POST /v1/agents/{project}/{agent}/kill", "prod-y", 404},
	{operatorCI, "GET /v1/logs", "prod-y", 404},
	{operatorCI, "GET /v1/logs", "", 403},
	{operatorCI, "GET /v1/projects", "", 200},
	{operatorCI, "GET /v1/agents/resolve", "", 200},
	{operatorCI, "GET /v1/agents/resolve", "prod-y", 404},
	{operatorCI, "GET /v1/llm/usage", "", 403},
	{operatorCI, "GET /v1/llm/usage", "ci-x", 200},
	{operatorCI, "POST /v1/llm/chat", "", 403},
	{operatorCI, "POST /v1/bus/{project}/{channel}", "ci-x", 200},
	{operatorCI, "POST /v1/bus/{project}/{channel}", "prod-y", 404},
	{operatorCI, "GET /v1/auth/certs", "", 403},
	// An admin does everything.
	{adminAll, "GET /v1/auth/keys", "", 200},
	{adminAll, "POST /v1/auth/keys", "", 200},
	{adminAll, "DELETE /v1/auth/certs/{serial}", "", 200},
	{adminAll, "GET /v1/audit/checkpoint", "", 200},
	{adminAll, "POST /v1/projects", "prod-y", 200},
	{adminAll, "POST /v1/llm/chat", "", 200},
	// A local user (default binding) runs new projects and acts on its
	// own; another's is hidden, except that its name is taken.
	{localUser, "POST /v1/projects", "new-z", 200},
	{localUser, "POST /v1/projects", "ci-x", 200},
	{localUser, "POST /v1/projects", "prod-y", 403},
	{localUser, "GET /v1/agents/{project}/{agent}", "ci-x", 200},
	{localUser, "POST /v1/agents/{project}/{agent}/kill", "ci-x", 200},
	{localUser, "GET /v1/agents/{project}/{agent}", "prod-y", 404},
	{localUser, "GET /v1/agents/{project}/{agent}", "new-z", 404},
	{localUser, "GET /v1/logs", "prod-y", 404},
	{localUser, "GET /v1/projects", "", 200},
	{localUser, "GET /v1/llm/usage", "", 403},
	{localUser, "GET /v1/auth/keys", "", 403},
	// A route missing from the table is admin-only.
	{operatorCI, "GET /v1/unclassified", "", 403},
	{adminAll, "GET /v1/unclassified", "", 200},
}

func status(d Decision) int {
	if d.Allow {
		return http.StatusOK
	}
	return d.Status
}

func TestAuthorizeReference(t *testing.T) {
	for _, rc := range reference {
		class, _ := Routes.Lookup(rc.route)
		d := Authorize(rc.id, Request{Route: rc.route, Class: class, Target: targets[rc.target]})
		if got := status(d); got != rc.want {
			t.Errorf("%s %s on %q: got %d (%s), want %d", rc.id.Name, rc.route, rc.target, got, d.Reason, rc.want)
		}
	}
}

// TestHiddenLooksAbsent: for a project an identity may not see, the
// answer is the same whether it exists or not.
func TestHiddenLooksAbsent(t *testing.T) {
	for _, id := range []Identity{operatorCI, localUser} {
		for route, class := range Routes {
			if class.Scope != ScopeProject {
				continue
			}
			exists := Authorize(id, Request{Route: route, Class: class, Target: targets["prod-y"]})
			absent := Authorize(id, Request{Route: route, Class: class, Target: Target{Project: "prod-y", Agent: "a"}})
			if class.Creates && id.UID >= 0 {
				continue // a local user creating: the name is taken (documented)
			}
			if exists != absent {
				t.Errorf("%s %s: existing %+v, absent %+v", id.Name, route, exists, absent)
			}
		}
	}
}

// TestGateNeedsTheLevel: a body is read only for an identity that could
// act somewhere.
func TestGateNeedsTheLevel(t *testing.T) {
	class, _ := Routes.Lookup("POST /v1/projects")
	for _, tc := range []struct {
		id   Identity
		want bool
	}{{viewerAll, false}, {operatorCI, true}, {adminAll, true}, {localUser, true}} {
		d := Authorize(tc.id, Request{Route: "POST /v1/projects", Class: class, Target: Target{Pending: true}})
		if d.Allow != tc.want {
			t.Errorf("%s: gate %v, want %v", tc.id.Name, d.Allow, tc.want)
		}
	}
}

// Binding kinds and target relations of the fuzz reference.
const (
	kindAll = iota
	kindMatch
	kindMiss
	kindOwned
	numKinds
)

const (
	relOwn = iota
	relOther
	relAbsent
	numRels
)

// singleCovers is the reference table of when one binding applies:
// [kind][relation][creates].
var singleCovers = [numKinds][numRels][2]bool{
	kindAll:   {relOwn: {true, true}, relOther: {true, true}, relAbsent: {true, true}},
	kindMatch: {relOwn: {true, true}, relOther: {true, true}, relAbsent: {true, true}},
	kindMiss:  {relOwn: {false, false}, relOther: {false, false}, relAbsent: {false, false}},
	kindOwned: {relOwn: {true, true}, relOther: {false, false}, relAbsent: {false, true}},
}

// refAuthorize decides from the tables above, as the role definitions
// say, independently of Authorize.
func refAuthorize(roles []Role, kinds []int, class Class, rel int, named bool) int {
	lvl := func(r Role) Level {
		return map[Role]Level{Viewer: LevelRead, Operator: LevelOperate, Admin: LevelAdmin}[r]
	}
	scope := class.Scope
	if scope == ScopeProject && !named {
		scope = class.Else
		if scope == scopeUnset {
			scope = ScopeGlobal
		}
	}
	any := func(f func(r Role, k int) bool) bool {
		for i := range roles {
			if f(roles[i], kinds[i]) {
				return true
			}
		}
		return false
	}
	switch scope {
	case ScopeAny:
		return 200
	case ScopeGlobal:
		if any(func(r Role, k int) bool { return k == kindAll && lvl(r) >= class.Level }) {
			return 200
		}
		return 403
	case ScopeListing:
		if any(func(r Role, k int) bool { return lvl(r) >= class.Level }) {
			return 200
		}
		return 403
	}
	c := 0
	if class.Creates {
		c = 1
	}
	if any(func(r Role, k int) bool { return singleCovers[k][rel][c] && lvl(r) >= class.Level }) {
		return 200
	}
	if any(func(r Role, k int) bool { return singleCovers[k][rel][c] && lvl(r) >= LevelRead }) {
		return 403
	}
	if class.Creates && rel != relAbsent && any(func(r Role, k int) bool { return k == kindOwned && lvl(r) >= class.Level }) {
		return 403
	}
	return 404
}

func routeNames() []string {
	var out []string
	for r := range Routes {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// FuzzAuthorize checks Authorize against the reference for identities
// of one to three bindings, every route, every target relation.
func FuzzAuthorize(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 1})
	f.Add([]byte{1, 1, 5, 2, 0, 1, 3})
	f.Add([]byte{2, 3, 0, 0, 3, 1, 2, 0})
	f.Add([]byte{1, 3, 9, 1, 0, 2, 1, 3, 0})
	routes := routeNames()
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 5 {
			return
		}
		route := routes[int(binary.BigEndian.Uint16([]byte{b[0], b[1]}))%len(routes)]
		class, _ := Routes.Lookup(route)
		rel := int(b[2]) % numRels
		named := b[3]%4 != 0
		n := 1 + int(b[4])%3
		b = b[5:]
		id := Identity{Name: "fuzz", UID: 1000}
		var roles []Role
		var kinds []int
		project := "ci-x"
		if !named {
			project = ""
		}
		for i := 0; i < n && len(b) >= 2; i++ {
			role := []Role{Viewer, Operator, Admin}[int(b[0])%3]
			kind := int(b[1]) % numKinds
			b = b[2:]
			bd := Binding{Role: role}
			switch kind {
			case kindMatch:
				bd.Projects = []string{"ci-*", "other"}
			case kindMiss:
				bd.Projects = []string{"prod-*", "ci"}
			case kindOwned:
				bd.Owned = true
			}
			id.Bindings = append(id.Bindings, bd)
			roles, kinds = append(roles, role), append(kinds, kind)
		}
		t0 := Target{Project: project, Agent: "a"}
		switch rel {
		case relOwn:
			t0.Exists, t0.Owner = true, 1000
		case relOther:
			t0.Exists, t0.Owner = true, 0
		}
		got := status(Authorize(id, Request{Route: route, Class: class, Target: t0}))
		want := refAuthorize(roles, kinds, class, rel, named)
		if got != want {
			t.Fatalf("%s, target %+v, bindings %+v: got %d, reference %d", route, t0, id.Bindings, got, want)
		}
	})
}
