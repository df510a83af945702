package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cortexrt/cortex/internal/bus"
	"github.com/cortexrt/cortex/internal/logkey"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/sandbox"
	"github.com/cortexrt/cortex/internal/supervisor"
	"github.com/cortexrt/cortex/sdk"
)

// Where the bus socket is inside a sandbox.
const (
	sandboxBusDir    = "/run/cortex"
	sandboxBusSocket = sandboxBusDir + "/bus.sock"
)

// busWiring gives every agent its own bus socket. The socket lives in a
// per-agent directory under run/cortex/agents/<project>/<agent>/bus, and
// that directory (not the socket file) is bound at /run/cortex, so the
// socket a restarted daemon creates at the same path is the one the
// agent's SDK reconnects to.
type busWiring struct {
	srv *bus.Server
	// confined: inside a fresh root (else the agent sees the host path).
	confined bool
}

var (
	_ supervisor.Wiring   = busWiring{}
	_ supervisor.Rewiring = busWiring{}
)

func busDir(a supervisor.AgentInfo) string { return filepath.Join(a.RunDir, "bus") }

func (b busWiring) Prepare(ctx context.Context, a supervisor.AgentInfo, spec *sandbox.Spec) error {
	dir := busDir(a)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bus socket directory: %w", err)
	}
	// Bound at /run/cortex: the agent must reach its socket (0600, its
	// own) through it, whatever the daemon's umask.
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("bus socket directory: %w", err)
	}
	if spec.Rootfs != nil && b.confined {
		spec.Rootfs.Binds = append(spec.Rootfs.Binds, sandbox.Bind{Source: dir, Target: sandboxBusDir})
		spec.Env = append(spec.Env, "CORTEX_BUS="+sandboxBusSocket)
		return nil
	}
	spec.Env = append(spec.Env, "CORTEX_BUS="+filepath.Join(dir, "bus.sock"))
	return nil
}

func (b busWiring) Wire(ctx context.Context, a supervisor.AgentInfo, pid int) (io.Closer, error) {
	caps := a.Agent.Capabilities
	uid, gid := a.UID, a.GID
	if !b.confined {
		uid, gid = -1, -1
	}
	c, err := b.srv.ServeAgent(ctx, bus.Identity{Project: a.Project, Agent: a.Agent.Name},
		bus.Policy{Publish: caps.BusPublish, Subscribe: caps.BusSubscribe, Durable: caps.BusDurable},
		filepath.Join(busDir(a), "bus.sock"), uid, gid)
	if err != nil {
		return nil, fmt.Errorf("bus: %w", err)
	}
	return c, nil
}

// Rewire serves a recovered agent's socket again (same path).
func (b busWiring) Rewire(ctx context.Context, a supervisor.AgentInfo, pid int) (io.Closer, error) {
	return b.Wire(ctx, a, pid)
}

// setBrokers bridges every project that declares bus.broker (after a
// daemon start, for the projects it recovered).
func (d *Daemon) setBrokers(ctx context.Context) {
	ps, err := d.store.ListProjects(ctx)
	if err != nil {
		return
	}
	for _, p := range ps {
		var m manifest.Manifest
		if json.Unmarshal(p.Manifest, &m) != nil || m.GlobalCapabilities.BusBroker == "" {
			continue
		}
		if err := d.bus.SetBroker(ctx, p.Name, m.GlobalCapabilities.BusBroker); err != nil {
			d.log.Warn("bus broker", logkey.Project, p.Name, logkey.Err, err)
		}
	}
}

// forgetBus drops a removed project's bus state: its broker bridge, and
// its durable channels with their stored messages and cursors, which a
// later project of the same name must not inherit.
func (d *Daemon) forgetBus(ctx context.Context, project string) {
	if d.bus == nil {
		return
	}
	if err := d.bus.RemoveProject(ctx, project); err != nil {
		d.log.Warn("bus: forget removed project", logkey.Project, project, logkey.Err, err)
	}
}

// installSDK writes the agent SDKs under shareDir/sdk (python/, node/).
func installSDK(shareDir string) error { return sdk.WriteTo(filepath.Join(shareDir, "sdk")) }
