package auth

// TargetFrom says where a route names its project.
type TargetFrom int

const (
	// FromNone: the route names no project.
	FromNone TargetFrom = iota
	// FromPath: the {project} (and {agent}) wildcards of its pattern.
	FromPath
	// FromQuery: ?project= (given once at most).
	FromQuery
	// FromRef: ?ref=project/agent; a bare agent name names no project.
	FromRef
	// FromBody: the body, read by the route's decoder (Pipeline.Decoders)
	// after the gate (Target.Pending).
	FromBody
)

// Class is how the pipeline authorizes and audits a route.
type Class struct {
	Level  Level
	Scope  Scope
	Target TargetFrom
	// Else is the scope when the request names no project (listing or
	// global); unset means global.
	Else Scope
	// Creates: the route may name a project that does not exist yet.
	Creates bool
	// Stream: the answer is a stream (Server-Sent Events): sent as it
	// comes, audited when it begins and when it ends.
	Stream bool
}

// Any is a route any authenticated identity may use.
func Any() Class { return Class{Level: LevelNone, Scope: ScopeAny} }

// Global is a route on the daemon as a whole.
func Global(l Level) Class { return Class{Level: l, Scope: ScopeGlobal} }

// List is a listing the handler filters to what the caller sees
// (auth.CallerFrom(ctx).Sees).
func List(l Level) Class { return Class{Level: l, Scope: ScopeListing} }

// Project is a route on the project the request names.
func Project(l Level, from TargetFrom) Class {
	return Class{Level: l, Scope: ScopeProject, Target: from}
}

// OrList makes a request naming no project a listing.
func (c Class) OrList() Class { c.Else = ScopeListing; return c }

// OrGlobal makes a request naming no project global (the default).
func (c Class) OrGlobal() Class { c.Else = ScopeGlobal; return c }

// Streaming marks a stream.
func (c Class) Streaming() Class { c.Stream = true; return c }

// Creating lets the route name a project that does not exist yet.
func (c Class) Creating() Class { c.Creates = true; return c }

// Mutates reports whether the route changes something: its audit entry
// is written before the handler runs, as well as after.
func (c Class) Mutates() bool { return c.Level >= LevelOperate }

// Table classifies routes by their http.ServeMux pattern.
type Table map[string]Class

// Unclassified is the class of a pattern missing from the table: admin
// only, on the daemon as a whole (fail closed).
var Unclassified = Global(LevelAdmin)

// Lookup returns the pattern's class, Unclassified when it has none.
func (t Table) Lookup(pattern string) (Class, bool) {
	c, ok := t[pattern]
	if !ok {
		return Unclassified, false
	}
	return c, true
}

// Routes classifies every route the daemon serves. Adding a route to
// the daemon's mux means adding its line here (a test fails otherwise;
// a route missing from this table is admin-only):
//
//	"GET /metrics": List(LevelRead),   // a listing: filter with CallerFrom(ctx).Sees
//
// Level: read (viewer), operate (operator), admin. Scope: Any, Global,
// List, or Project(level, where the project is named) with OrList or
// OrGlobal for requests that name none. Streaming for Server-Sent
// Events; Creating for a route that may name a new project.
var Routes = Table{
	"GET /v1/version":     Any(),
	"GET /v1/auth/whoami": Any(),
	"GET /v1/auth/ca":     Any(),

	"POST /v1/projects":                         Project(LevelOperate, FromBody).Creating(),
	"GET /v1/projects":                          List(LevelRead),
	"POST /v1/projects/{project}/stop":          Project(LevelOperate, FromPath),
	"DELETE /v1/projects/{project}":             Project(LevelOperate, FromPath),
	"GET /v1/projects/{project}/attach":         Project(LevelRead, FromPath).Streaming(),
	"GET /v1/agents":                            List(LevelRead),
	"GET /v1/agents/resolve":                    Project(LevelRead, FromRef).OrList(),
	"GET /v1/agents/{project}/{agent}":          Project(LevelRead, FromPath),
	"POST /v1/agents/{project}/{agent}/kill":    Project(LevelOperate, FromPath),
	"POST /v1/agents/{project}/{agent}/suspend": Project(LevelOperate, FromPath),
	"POST /v1/agents/{project}/{agent}/resume":  Project(LevelOperate, FromPath),
	"GET /v1/logs":                              Project(LevelRead, FromQuery).Streaming(),
	"GET /v1/events":                            List(LevelRead).Streaming(),
	// run --learn: what the project's agents were refused.
	"GET /v1/projects/{project}/denials": Project(LevelRead, FromPath),

	"GET /v1/bus/stats":                List(LevelRead),
	"POST /v1/bus/{project}/{channel}": Project(LevelOperate, FromPath),
	"GET /v1/bus/{project}/{channel}":  Project(LevelRead, FromPath).Streaming(),

	"GET /v1/llm/usage":  Project(LevelRead, FromQuery).OrGlobal(),
	"GET /v1/llm/models": List(LevelRead),
	"POST /v1/llm/chat":  Global(LevelOperate),
	// run --llm-replay uploads the project's cassettes; --llm-record
	// fetches what it recorded (recorded prompts are the project's data).
	"POST /v1/llm/cassettes":          Project(LevelOperate, FromQuery),
	"GET /v1/llm/cassettes/{project}": Project(LevelOperate, FromPath),

	"GET /v1/auth/keys":              Global(LevelAdmin),
	"POST /v1/auth/keys":             Global(LevelAdmin),
	"DELETE /v1/auth/keys/{name}":    Global(LevelAdmin),
	"GET /v1/auth/certs":             Global(LevelAdmin),
	"POST /v1/auth/certs":            Global(LevelAdmin),
	"DELETE /v1/auth/certs/{serial}": Global(LevelAdmin),

	"GET /v1/audit":              Global(LevelAdmin),
	"GET /v1/audit/checkpoint":   Global(LevelAdmin),
	"GET /v1/audit/files":        Global(LevelAdmin),
	"GET /v1/audit/files/{name}": Global(LevelAdmin),

	// cortex-ops: the host's health and changes to it.
	"GET /v1/ops/checks":                  Global(LevelAdmin),
	"POST /v1/ops/repair":                 Global(LevelAdmin),
	"GET /v1/ops/transactions":            Global(LevelAdmin),
	"POST /v1/ops/transactions/{id}/undo": Global(LevelAdmin),
	"POST /v1/ops/record":                 Global(LevelAdmin),
	"POST /v1/ops/hooks/{event}":          Global(LevelAdmin),
	"POST /v1/ops/explain":                Global(LevelAdmin),
	"POST /v1/ops/canary":                 Global(LevelAdmin),
}
