package doctor

import (
	"context"
	"time"

	"github.com/cortexrt/cortex/internal/config"
)

// Host is what the built-in checks examine.
type Host struct {
	Paths config.Paths
	// Config is the configuration in effect: the running daemon's, or
	// (offline) the file's.
	Config *config.Config
	// Running: a daemon runs with Config (config.file then compares the
	// file with it).
	Running   bool
	PyenvRoot string
	// CgroupParent is the daemon's cgroup parent name.
	CgroupParent string
	// Executable is the cortexd binary (its build is the clock's floor).
	Executable string
	// State is what the daemon knows of agents and projects; nil when
	// nothing is known (then the checks that need it are skipped).
	State State
	// UIDBase is the first uid handed to agents.
	UIDBase int
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// AgentInfo is one agent the daemon knows.
type AgentInfo struct {
	Project, Agent string
	// Active: it has (or is about to have) a process; its cgroup, run
	// directory and sockets are in use.
	Active bool
}

// State is what the daemon knows that checks need. The daemon implements
// it over its supervisor and store; `cortexd ops` over the store, read
// only.
type State interface {
	// Agents lists every agent the daemon knows.
	Agents(ctx context.Context) ([]AgentInfo, error)
	// BundleDirs lists the bundle directories projects use.
	BundleDirs(ctx context.Context) ([]string, error)
	// Hold keeps projects from being created until release is called
	// (a repair that removes bundle directories holds it).
	Hold() (release func())
}

func (h *Host) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// Builtin returns the built-in host checks, in report order.
func Builtin(h *Host) []Check {
	return []Check{
		h.checkCgroups(), h.checkNamespaces(), h.checkSeccomp(), h.checkLandlock(), h.checkNftables(),
		h.checkConfig(), h.checkRuntimes(),
		h.checkFilePerms(), h.checkSocketPerms(), h.checkHookPerms(),
		h.checkDisk(),
		h.checkStaleCgroups(), h.checkStaleMounts(), h.checkStaleSockets(), h.checkOrphanBundles(),
		h.checkClock(), h.checkUIDs(),
	}
}
