package auth

import (
	"fmt"
	"strings"

	"github.com/cortexrt/cortex/internal/config"
)

// Level is what a request needs: to read, to operate, or to administer.
// A role grants its level and every level below it.
type Level int

const (
	// LevelNone: any authenticated identity (the version, a 404).
	LevelNone Level = iota
	// LevelRead: list, inspect, logs, events, metrics, bus subscribe.
	LevelRead
	// LevelOperate: run, kill, stop, suspend, resume, rm, bus publish.
	LevelOperate
	// LevelAdmin: keys, certificates, config, the audit log.
	LevelAdmin
)

func (l Level) String() string {
	switch l {
	case LevelNone:
		return "none"
	case LevelRead:
		return "read"
	case LevelOperate:
		return "operate"
	case LevelAdmin:
		return "admin"
	}
	return fmt.Sprintf("level(%d)", int(l))
}

// Role is a named level: viewer, operator, admin.
type Role string

const (
	Viewer   Role = "viewer"
	Operator Role = "operator"
	Admin    Role = "admin"
)

// Level is the level the role grants (LevelNone for an unknown role).
func (r Role) Level() Level {
	switch r {
	case Viewer:
		return LevelRead
	case Operator:
		return LevelOperate
	case Admin:
		return LevelAdmin
	}
	return LevelNone
}

// ParseRole checks r is a role.
func ParseRole(r string) (Role, error) {
	if err := config.CheckRole(r); err != nil {
		return "", err
	}
	return Role(r), nil
}

// Binding grants a role on a set of projects.
type Binding struct {
	Role Role `json:"role"`
	// Projects are exact names or prefixes ending in '*'; empty means
	// every project.
	Projects []string `json:"projects,omitempty"`
	// Owned: the binding covers the projects the identity's uid owns,
	// and new project names (a local user's default: operator of what
	// they run).
	Owned bool `json:"owned,omitempty"`
}

// Unrestricted reports whether b covers every project.
func (b Binding) Unrestricted() bool { return !b.Owned && len(b.Projects) == 0 }

// matches reports whether a pattern binding names project.
func (b Binding) matches(project string) bool {
	if len(b.Projects) == 0 {
		return true
	}
	for _, p := range b.Projects {
		if MatchProject(p, project) {
			return true
		}
	}
	return false
}

// MatchProject reports whether pattern (a name, or a prefix ending in
// '*') names project.
func MatchProject(pattern, project string) bool {
	if project == "" {
		return false
	}
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(project, prefix)
	}
	return pattern == project
}

// String describes the binding: "operator on ci-*", "admin on every
// project", "operator on the projects it owns".
func (b Binding) String() string {
	switch {
	case b.Owned:
		return string(b.Role) + " on the projects it runs"
	case len(b.Projects) == 0:
		return string(b.Role) + " on every project"
	}
	return string(b.Role) + " on " + strings.Join(b.Projects, ", ")
}

// Auth methods.
const (
	AuthPeer = "peer" // unix socket, SO_PEERCRED
	AuthKey  = "key"  // Authorization: Bearer
	AuthCert = "cert" // TLS client certificate
)

// Identity is an authenticated caller.
type Identity struct {
	// Name is stable and unique: uid:N, key:NAME or cert:NAME.
	Name string `json:"name"`
	// Auth is how it authenticated (AuthPeer, AuthKey, AuthCert).
	Auth string `json:"auth"`
	// Credential names the key id or certificate serial ("" for peers).
	Credential string `json:"credential,omitempty"`
	// UID is the local caller's uid (-1 for a caller over TCP); it is
	// what Owned bindings compare a project's owner with.
	UID      int       `json:"uid"`
	Bindings []Binding `json:"bindings"`
}

// Role is the identity's highest role (its rate limit's).
func (id Identity) Role() Role {
	best := Role("")
	for _, b := range id.Bindings {
		if b.Role.Level() > best.Level() {
			best = b.Role
		}
	}
	return best
}

// Root is the identity of uid 0 on the unix socket.
func Root() Identity {
	return Identity{Name: "uid:0", Auth: AuthPeer, UID: 0, Bindings: []Binding{{Role: Admin}}}
}
