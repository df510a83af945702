package supervisor

import (
	"context"
	"io"
	"time"

	"github.com/cortexrt/cortex/internal/logs"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/sandbox"
	"github.com/cortexrt/cortex/internal/store"
)

// State is an agent's lifecycle state. The supervisor owns the lifecycle
// model; the daemon converts it to the API's wire types at the edge.
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

// Status is what the supervisor knows of one agent now.
type Status struct {
	Project        string
	Agent          string
	Description    string
	State          State
	Reason         string
	ExitCode       *int
	Pid            int
	Restarts       int
	RestartPending bool
	StartedAt      time.Time
	FinishedAt     time.Time
	CPUPercent     float64
	MemoryBytes    uint64
	MemoryLimit    uint64
	// Degraded lists the walls this agent runs without (the daemon opted
	// into degraded mode on a host that lacks them).
	Degraded []string
}

// Inspection is everything known of one agent.
type Inspection struct {
	Status
	Spec          manifest.ResolvedAgent
	Limits        manifest.Limits
	UID           int
	Cgroup        string
	CgroupVersion int
	Walls         []Wall
	BundleDigest  string
	BundleDir     string
	SourceDir     string
	History       []store.Event // newest first
	Logs          logs.AgentStats
	// LastOOM is the agent's memory at its latest OOM kill (since this
	// daemon started), nil if none.
	LastOOM *OOMReport
}

// OOMReport is an agent's cgroup memory right after an OOM kill, read
// before the cgroup is removed: Peak is the high-water mark that hit the
// ceiling; the rest is what was still charged once the kernel had killed
// the victim (its anonymous memory is freed by then; tmpfs, page cache and
// kernel memory are not). Bytes.
type OOMReport struct {
	Run                                                 int
	Time                                                time.Time
	Limit, Peak, Usage, Anon, File, Shmem, Kernel, Sock uint64
}

// Wall is one confinement layer and whether it is up for an agent.
type Wall struct {
	Name   string
	Up     bool
	Detail string
}

// Event is one state transition, as Subscribe streams it.
type Event struct {
	Time           time.Time
	Project        string
	Agent          string
	Run            int
	State          State
	Reason         string
	ExitCode       *int
	RestartPending bool
}

// Final reports whether the event ends the agent's story: a terminal
// state with no restart coming.
func (e Event) Final() bool { return !e.State.Active() && !e.RestartPending }

// Reasons an agent ended.
const (
	ReasonExited       = "Exited"
	ReasonOOMKilled    = "OOMKilled"
	ReasonKilled       = "Killed"
	ReasonRestartLimit = "RestartLimit"
	ReasonStartError   = "StartError"
	// ReasonLost: the agent ended while the daemon was down and left no
	// exit status behind.
	ReasonLost = "Lost"
)

// AgentInfo tells a Wiring which agent's sandbox it wires.
type AgentInfo struct {
	Project string
	Agent   manifest.ResolvedAgent
	Run     int
	UID     int
	GID     int
	// RunDir is the agent's private host directory under run/cortex.
	RunDir string
}

// Wiring connects a daemon subsystem (the egress gateway, the bus, the
// LLM gateway) to an agent's sandbox, in two steps:
//
//   - Prepare runs before the sandbox exists and may amend its spec (binds,
//     env, files);
//   - Wire runs once the sandbox init exists in its namespaces, while it
//     builds the sandbox and before any agent code runs; pid is the init's
//     host pid (so /proc/<pid>/ns/net is the agent's network namespace).
//     The returned Closer (may be nil) is called when that run ends.
type Wiring interface {
	Prepare(ctx context.Context, a AgentInfo, spec *sandbox.Spec) error
	Wire(ctx context.Context, a AgentInfo, pid int) (io.Closer, error)
}

// Rewiring is a Wiring that can serve an agent again after a daemon
// restart (its sandbox lived on; the daemon's listeners did not). pid is
// the recovered init's host pid. Wirings without it are not restored.
type Rewiring interface {
	Rewire(ctx context.Context, a AgentInfo, pid int) (io.Closer, error)
}
