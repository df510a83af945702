package auth

import (
	"fmt"
	"net/http"
)

// Scope is what a route acts on.
type Scope int

const (
	scopeUnset Scope = iota
	// ScopeAny: nothing in particular; any authenticated identity.
	ScopeAny
	// ScopeGlobal: the daemon as a whole; needs the level on every
	// project (an unrestricted binding).
	ScopeGlobal
	// ScopeListing: a listing the handler filters to the projects the
	// identity sees; needs the level somewhere.
	ScopeListing
	// ScopeProject: one project the request names.
	ScopeProject
)

func (s Scope) String() string {
	return [...]string{"unset", "any", "global", "listing", "project"}[s]
}

// Target is the project (and agent) a request acts on, decoded from its
// path, query or body, with what the daemon knows of the project.
type Target struct {
	Project string
	Agent   string
	// Pending: the project is in a body not decoded yet. Authorize then
	// answers whether the identity could act on any project at all, the
	// gate before the daemon reads the body.
	Pending bool
	// Exists and Owner (a uid) are the project's, looked up by the
	// pipeline.
	Exists bool
	Owner  int
}

// Request is the typed request Authorize decides on: which route, its
// class, and what it targets. It is built from the decoded request,
// never from raw bytes.
type Request struct {
	Route  string
	Class  Class
	Target Target
}

// Decision is Authorize's answer.
type Decision struct {
	Allow bool
	// Status is 403, or 404 for a project the identity may not see (the
	// same answer as for a project that does not exist).
	Status int
	Reason string
}

// Outcome names the decision for the audit log: allowed, denied, hidden.
func (d Decision) Outcome() string {
	switch {
	case d.Allow:
		return "allowed"
	case d.Status == http.StatusNotFound:
		return "hidden"
	}
	return "denied"
}

func allow() Decision { return Decision{Allow: true} }

func deny(format string, args ...any) Decision {
	return Decision{Status: http.StatusForbidden, Reason: fmt.Sprintf(format, args...)}
}

// NotFoundReason is the message for a project an identity may not see:
// the store's for a project that does not exist, word for word.
func NotFoundReason(project string) string { return fmt.Sprintf("project %q not found", project) }

// Authorize is the one authorization decision of the API: may id make
// req? Every route, stream and surface goes through it, on the request
// as decoded (route, target, the body's project), never on raw bytes.
func Authorize(id Identity, req Request) Decision {
	c := req.Class
	scope := c.Scope
	t := req.Target
	if scope == ScopeProject && t.Project == "" && !t.Pending {
		scope = c.Else
		if scope == scopeUnset {
			scope = ScopeGlobal
		}
	}
	switch scope {
	case ScopeAny:
		return allow()
	case ScopeGlobal:
		for _, b := range id.Bindings {
			if b.Unrestricted() && b.Role.Level() >= c.Level {
				return allow()
			}
		}
		return deny("%s needs the %s role on every project", req.Route, roleFor(c.Level))
	case ScopeListing:
		for _, b := range id.Bindings {
			if b.Role.Level() >= c.Level {
				return allow()
			}
		}
		return deny("%s needs the %s role", req.Route, roleFor(c.Level))
	case ScopeProject:
		if t.Pending {
			for _, b := range id.Bindings {
				if b.Role.Level() >= c.Level {
					return allow()
				}
			}
			return deny("%s needs the %s role", req.Route, roleFor(c.Level))
		}
		visible, allowed, ownedCreate := false, false, false
		for _, b := range id.Bindings {
			if b.Owned && c.Creates && b.Role.Level() >= c.Level {
				ownedCreate = true
			}
			if !covers(b, id, t, c.Creates) {
				continue
			}
			if b.Role.Level() >= LevelRead {
				visible = true
			}
			if b.Role.Level() >= c.Level {
				allowed = true
			}
		}
		switch {
		case allowed:
			return allow()
		case visible:
			return deny("%s may not %s project %q", id.Role(), c.Level, t.Project)
		case ownedCreate && t.Exists && id.UID >= 0:
			// Project names are one namespace: that this one is taken
			// cannot be hidden from someone who may create projects.
			return deny("project %q exists and belongs to another user; choose another name", t.Project)
		}
		return Decision{Status: http.StatusNotFound, Reason: NotFoundReason(t.Project)}
	}
	return deny("%s: unclassified route", req.Route)
}

// covers reports whether binding b applies to the target project.
func covers(b Binding, id Identity, t Target, creates bool) bool {
	if b.Owned {
		if id.UID < 0 {
			return false
		}
		return t.Exists && t.Owner == id.UID || creates && !t.Exists
	}
	return b.matches(t.Project)
}

// Sees reports whether id may see project (owner is its owner's uid).
func Sees(id Identity, project string, owner int) bool {
	t := Target{Project: project, Exists: true, Owner: owner}
	for _, b := range id.Bindings {
		if b.Role.Level() >= LevelRead && covers(b, id, t, false) {
			return true
		}
	}
	return false
}

func roleFor(l Level) Role {
	switch l {
	case LevelRead:
		return Viewer
	case LevelOperate:
		return Operator
	}
	return Admin
}
