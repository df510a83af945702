// Package logkey names the log/slog attribute keys that several packages
// attach to the daemon's own log lines, so that one key always means one
// fact and the lines can be filtered on it. Keys used by one call site
// only stay where they are written. It imports nothing.
package logkey

const (
	Subsystem = "subsystem" // the daemon subsystem: bus, cgroups, egress, llm, logs, supervisor
	Project   = "project"   // a project (swarm) name
	Agent     = "agent"     // an agent name within its project
	Run       = "run"       // an agent's run: its restart count
	Err       = "err"       // the error being reported
	Sandbox   = "sandbox"   // a sandbox's id (project/agent): the init's own lines
	Cgroup    = "cgroup"    // a cgroup: its name under the daemon's parent (project/agent) or its path
	Step      = "step"      // a named step of a sequence (an agent's or a sandbox's start)
	Took      = "took"      // how long the step or operation took
)
