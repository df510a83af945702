package supervisor

import (
	"context"
	"io"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/sandbox"
)

// The lifecycle model is the API's.
type (
	State      = api.State
	Status     = api.AgentStatus
	Inspection = api.Inspection
	Wall       = api.Wall
	Event      = api.Event
)

const (
	Starting  = api.Starting
	Running   = api.Running
	Suspended = api.Suspended
	Stopped   = api.Stopped
	Failed    = api.Failed
)

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

// AgentInfo tells an Attacher which agent it is attaching to.
type AgentInfo struct {
	Project string
	Agent   manifest.ResolvedAgent
	Run     int
	UID     int
	GID     int
	// RunDir is the agent's private host directory under run/cortex.
	RunDir string
}

// Attacher adds a subsystem (the egress gateway, the bus, the LLM
// gateway) to an agent's sandbox, in two steps:
//
//   - Prepare runs before the sandbox exists and may amend its spec (binds,
//     env, files);
//   - Attach runs once the sandbox init exists in its namespaces, while it
//     builds the sandbox and before any agent code runs; pid is the init's
//     host pid (so /proc/<pid>/ns/net is the agent's network namespace).
//     The returned Closer (may be nil) is called when that run ends.
type Attacher interface {
	Prepare(ctx context.Context, a AgentInfo, spec *sandbox.Spec) error
	Attach(ctx context.Context, a AgentInfo, pid int) (io.Closer, error)
}

// Reattacher is an Attacher that can serve an agent again after a daemon
// restart (its sandbox lived on; the daemon's listeners did not). pid is
// the reattached init's host pid. Attachers without it are not restored.
type Reattacher interface {
	Reattach(ctx context.Context, a AgentInfo, pid int) (io.Closer, error)
}
