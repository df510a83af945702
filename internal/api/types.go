// Package api holds the wire model of the daemon's REST API (/v1 over the
// unix socket) and the client the CLI uses. It must stay free of daemon
// internals: no processes, cgroups or sandboxes, so the CLI links none.
package api

import (
	"time"

	"github.com/cortexrt/cortex/internal/logs"
	"github.com/cortexrt/cortex/internal/manifest"
)

// Version of the API; the URL prefix.
const Version = "v1"

// State is an agent's lifecycle state.
type State string

const (
	Starting  State = "starting"
	Running   State = "running"
	Suspended State = "suspended"
	Stopped   State = "stopped"
	Failed    State = "failed"
)

// Active reports whether an agent in s has (or is about to have) a process.
func (s State) Active() bool { return s == Starting || s == Running || s == Suspended }

// AgentStatus is what `cortex list` shows of one agent.
type AgentStatus struct {
	Project        string    `json:"project"`
	Agent          string    `json:"agent"`
	Description    string    `json:"description,omitempty"`
	State          State     `json:"state"`
	Reason         string    `json:"reason,omitempty"`
	ExitCode       *int      `json:"exit_code,omitempty"`
	Pid            int       `json:"pid,omitempty"`
	Restarts       int       `json:"restarts"`
	RestartPending bool      `json:"restart_pending,omitempty"`
	StartedAt      time.Time `json:"started_at,omitzero"`
	FinishedAt     time.Time `json:"finished_at,omitzero"`
	CPUPercent     float64   `json:"cpu_percent"`
	MemoryBytes    uint64    `json:"memory_bytes"`
	MemoryLimit    uint64    `json:"memory_limit"`
	// Degraded lists the walls this agent runs without (the daemon opted
	// into degraded mode on a host that lacks them).
	Degraded []string `json:"degraded,omitempty"`
}

// Inspection is the full picture of one agent for `cortex inspect`.
type Inspection struct {
	AgentStatus
	Spec          manifest.ResolvedAgent `json:"manifest"`
	Limits        manifest.Limits        `json:"limits"`
	UID           int                    `json:"uid,omitempty"`
	Cgroup        string                 `json:"cgroup,omitempty"`
	CgroupVersion int                    `json:"cgroup_version"`
	Walls         []Wall                 `json:"walls"`
	BundleDigest  string                 `json:"bundle_digest"`
	BundleDir     string                 `json:"bundle_dir"`
	SourceDir     string                 `json:"source_dir,omitempty"`
	History       []HistoryEvent         `json:"history"`
	Logs          logs.AgentStats        `json:"logs"`
	Egress        any                    `json:"egress,omitempty"`
	// LastOOM is the agent's memory when its latest OOM kill was
	// classified (since this daemon started).
	LastOOM *OOMReport `json:"last_oom,omitempty"`
}

// OOMReport is an agent's cgroup memory right after an OOM kill, read
// before the cgroup is removed: Peak is the high-water mark that hit the
// ceiling; the rest is what was still charged once the kernel had killed
// the victim (its anonymous memory is freed by then; tmpfs, page cache and
// kernel memory are not). Bytes.
type OOMReport struct {
	Run    int       `json:"run"`
	Time   time.Time `json:"time"`
	Limit  uint64    `json:"limit"`
	Peak   uint64    `json:"peak"`
	Usage  uint64    `json:"usage"`
	Anon   uint64    `json:"anon"`
	File   uint64    `json:"file"`
	Shmem  uint64    `json:"shmem"`
	Kernel uint64    `json:"kernel"`
	Sock   uint64    `json:"sock"`
}

// Wall is one confinement layer and whether it is up for an agent.
type Wall struct {
	Name   string `json:"name"`
	Up     bool   `json:"up"`
	Detail string `json:"detail,omitempty"`
}

// Event is one state transition.
type Event struct {
	Time           time.Time `json:"time"`
	Project        string    `json:"project"`
	Agent          string    `json:"agent"`
	Run            int       `json:"run"`
	State          State     `json:"state"`
	Reason         string    `json:"reason,omitempty"`
	ExitCode       *int      `json:"exit_code,omitempty"`
	RestartPending bool      `json:"restart_pending,omitempty"`
}

// HistoryEvent is one stored state transition of an agent.
type HistoryEvent struct {
	ID       int64     `json:"id"`
	Project  string    `json:"project"`
	Agent    string    `json:"agent"`
	Run      int       `json:"run"`
	State    string    `json:"state"`
	Reason   string    `json:"reason,omitempty"`
	ExitCode *int      `json:"exit_code,omitempty"`
	Time     time.Time `json:"time"`
}

// Final reports whether the event ends the agent's story: a terminal
// state with no restart coming.
func (e Event) Final() bool { return !e.State.Active() && !e.RestartPending }

// RunResponse answers POST /v1/projects.
type RunResponse struct {
	Project string   `json:"project"`
	Digest  string   `json:"digest"`
	Agents  []string `json:"agents"`
}

// ProjectSummary is one row of GET /v1/projects.
type ProjectSummary struct {
	Name      string         `json:"name"`
	Digest    string         `json:"digest"`
	SourceDir string         `json:"source_dir,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
	Agents    int            `json:"agents"`
	States    map[string]int `json:"states"`
}

// AgentRef names one agent.
type AgentRef struct {
	Project string `json:"project"`
	Agent   string `json:"agent"`
}

// VersionInfo answers GET /v1/version.
type VersionInfo struct {
	Version   string `json:"version"`
	API       string `json:"api"`
	GoVersion string `json:"go_version"`
	Pid       int    `json:"pid"`
	Root      string `json:"root"`
	// Executable is the daemon's binary (cortex-ops update checks the
	// daemon runs the version it installed).
	Executable string   `json:"executable,omitempty"`
	Cgroup     string   `json:"cgroup"`
	Walls      []Wall   `json:"walls"`
	Degraded   []string `json:"degraded,omitempty"`
}

// ErrorBody is every error response under /v1/ (the daemon's, the bus's
// and the LLM gateway's admin API alike); Category is an errdefs category.
type ErrorBody struct {
	Error    string `json:"error"`
	Category string `json:"category"`
	Hint     string `json:"hint,omitempty"`
}

// AttachEnd is the last event of an attach stream.
type AttachEnd struct {
	Failed []string      `json:"failed"` // project/agent of agents that ended failed
	Agents []AgentStatus `json:"agents"`
}

// Headers of POST /v1/projects.
const (
	HeaderSourceDir = "X-Cortex-Source-Dir" // the project directory a run came from
	HeaderFilename  = "X-Cortex-Bundle-Name"
	// HeaderLLMMode is "record" or "replay": how the project's LLM calls
	// are answered (internal/llm ModeRecord, ModeReplay); absent, the
	// manifest's llm.replay decides, else the providers answer.
	HeaderLLMMode = "X-Cortex-LLM-Mode"
	// HeaderLLMCassette names the cassette files uploaded for a replay
	// (POST /v1/llm/cassettes).
	HeaderLLMCassette = "X-Cortex-LLM-Cassette"
	// HeaderLearn is "1" for a run that learns what its agents were
	// refused (cortex run --learn; GET /v1/projects/{p}/denials).
	HeaderLearn = "X-Cortex-Learn"
)

// DenialsReport answers GET /v1/projects/{project}/denials: what the
// project's agents were refused since it last started, each distinct
// refusal once (internal/learn.Denial).
type DenialsReport struct {
	Project string `json:"project"`
	// Learning: the run was started with --learn.
	Learning bool `json:"learning"`
	// FSUnavailable says why file system refusals could not be read.
	FSUnavailable string   `json:"fs_unavailable,omitempty"`
	Denials       []Denial `json:"denials"`
	// Dropped counts distinct refusals beyond what the daemon keeps.
	Dropped int `json:"dropped,omitempty"`
}

// Denial is one distinct refusal of one agent.
type Denial struct {
	Agent   string `json:"agent"`
	Kind    string `json:"kind"` // egress, bus, llm, fs
	Host    string `json:"host,omitempty"`
	Port    int    `json:"port,omitempty"`
	Op      string `json:"op,omitempty"`
	Channel string `json:"channel,omitempty"`
	Alias   string `json:"alias,omitempty"`
	Path    string `json:"path,omitempty"`
	Access  string `json:"access,omitempty"`
	Parent  bool   `json:"parent,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Count   int    `json:"count"`
}
