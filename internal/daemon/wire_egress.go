package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/cortexrt/cortex/internal/egress"
	"github.com/cortexrt/cortex/internal/events"
	"github.com/cortexrt/cortex/internal/logs"
	"github.com/cortexrt/cortex/internal/sandbox"
	"github.com/cortexrt/cortex/internal/supervisor"
	"golang.org/x/sys/unix"
)

// wirings connect the daemon's subsystems to every agent's sandbox, in
// order.
func (d *Daemon) wirings() []supervisor.Wiring {
	var out []supervisor.Wiring
	if d.bus != nil {
		out = append(out, busWiring{srv: d.bus, confined: d.walls.sandboxOptions(0).Confine})
	}
	if d.llm != nil {
		out = append(out, llmWiring{gw: d.llm})
	}
	if d.egress != nil {
		out = append(out, d.egress)
	}
	if d.learning != nil {
		out = append(out, learnWiring{d.learning})
	}
	return out
}

// egressWiring connects each agent's network namespace to the egress
// gateway: the agent's resolv.conf and proxy variables point at it, its
// refusals go into the agent's log stream, and its synthetic DNS mappings
// are saved beside its runtime files so a restarted daemon keeps them.
type egressWiring struct {
	gw     *egress.Gateway
	logs   *logs.Store
	events *events.Stream
	// internal names every agent with the matching capability gets.
	internal func(supervisor.AgentInfo) []string
	// learn reports whether a project runs with --learn.
	learn func(project string) bool

	mu     sync.Mutex
	active map[string]*egressRun // by project/agent
}

type egressRun struct {
	ns       *egress.Netns
	mapsFile string
	saved    int
}

var (
	_ supervisor.Wiring   = (*egressWiring)(nil)
	_ supervisor.Rewiring = (*egressWiring)(nil)
)

func newEgressWiring(gw *egress.Gateway, ls *logs.Store, ev *events.Stream) *egressWiring {
	return &egressWiring{gw: gw, logs: ls, events: ev, active: map[string]*egressRun{}}
}

// Prepare implements supervisor.Wiring: the agent's resolver is the
// gateway, and agents with network.access get the proxy variables.
func (e *egressWiring) Prepare(ctx context.Context, a supervisor.AgentInfo, spec *sandbox.Spec) error {
	if _, err := egress.ParsePolicy(a.Agent.Capabilities.NetworkAccess); err != nil {
		return fmt.Errorf("network.access: %w", err)
	}
	if spec.Rootfs != nil {
		files := spec.Rootfs.Files[:0]
		for _, f := range spec.Rootfs.Files {
			if f.Path != "/etc/resolv.conf" {
				files = append(files, f)
			}
		}
		spec.Rootfs.Files = append(files, sandbox.File{Path: "/etc/resolv.conf", Data: egress.ResolvConf(), Mode: 0o644})
	}
	if len(a.Agent.Capabilities.NetworkAccess) > 0 {
		spec.Env = append(spec.Env, egress.ProxyEnv()...)
	}
	return nil
}

// Wire implements supervisor.Wiring: the gateway serves the agent's
// network namespace.
func (e *egressWiring) Wire(ctx context.Context, a supervisor.AgentInfo, pid int) (io.Closer, error) {
	return e.serve(ctx, a, pid, nil)
}

// Rewire implements supervisor.Rewiring: after a daemon restart, the
// gateway serves the agent's namespace again with the mappings it had.
func (e *egressWiring) Rewire(ctx context.Context, a supervisor.AgentInfo, pid int) (io.Closer, error) {
	restore := map[string]netip.Addr{}
	if data, err := os.ReadFile(filepath.Join(a.RunDir, "egress-mappings.json")); err == nil {
		_ = json.Unmarshal(data, &restore)
	}
	return e.serve(ctx, a, pid, restore)
}

func (e *egressWiring) serve(ctx context.Context, a supervisor.AgentInfo, pid int, restore map[string]netip.Addr) (*egressCloser, error) {
	pol, err := egress.ParsePolicy(a.Agent.Capabilities.NetworkAccess)
	if err != nil {
		return nil, fmt.Errorf("network.access: %w", err)
	}
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open network namespace of %d: %w", pid, err)
	}
	defer unix.Close(fd)
	var internal []string
	if e.internal != nil {
		internal = e.internal(a)
	}
	project, agent, run := a.Project, a.Agent.Name, a.Run
	// The namespace's connections carry who they come from, for the
	// internal services (the LLM gateway).
	ns, err := e.gw.ServeNetns(withAgentIdent(ctx, project, agent), fd, egress.NetnsOptions{
		Policy:   pol,
		Internal: internal,
		Restore:  restore,
		Learn:    e.learn != nil && e.learn(project),
		OnDeny: func(dn egress.Denial) {
			fields := map[string]any{"proto": dn.Proto, "reason": string(dn.Reason), "port": dn.Port}
			if dn.Name != "" {
				fields["name"] = dn.Name
			}
			if dn.Addr != "" {
				fields["addr"] = dn.Addr
			}
			_, _ = e.logs.Append(logs.Record{Project: project, Agent: agent, Run: run, Stream: logs.StreamSystem, Level: logs.LevelWarn, Message: "egress denied", Fields: fields})
			e.events.Emit(events.Event{Time: dn.Time, Project: project, Agent: agent, Run: run, Detail: events.EgressDeniedDetail{
				Protocol: dn.Proto, Host: dn.Name, Addr: dn.Addr, Port: dn.Port, Reason: string(dn.Reason)}})
		},
	})
	if err != nil {
		return nil, fmt.Errorf("egress gateway: %w", err)
	}
	r := &egressRun{ns: ns, mapsFile: filepath.Join(a.RunDir, "egress-mappings.json")}
	key := project + "/" + agent
	e.mu.Lock()
	e.active[key] = r
	e.mu.Unlock()
	return &egressCloser{e: e, key: key, r: r}, nil
}

type egressCloser struct {
	e   *egressWiring
	key string
	r   *egressRun
}

func (c *egressCloser) Close() error {
	c.e.mu.Lock()
	if c.e.active[c.key] == c.r {
		delete(c.e.active, c.key)
	}
	c.e.mu.Unlock()
	_ = os.Remove(c.r.mapsFile)
	return c.r.ns.Close()
}

// Stats returns an agent's egress counters, if its namespace is served.
func (e *egressWiring) Stats(project, agent string) (egress.Counters, bool) {
	e.mu.Lock()
	r, ok := e.active[project+"/"+agent]
	e.mu.Unlock()
	if !ok {
		return egress.Counters{}, false
	}
	return r.ns.Stats(), true
}

// saveLoop writes each served namespace's synthetic mappings to its runtime
// directory when they grew, until ctx is done.
func (e *egressWiring) saveLoop(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.mu.Lock()
		runs := make([]*egressRun, 0, len(e.active))
		for _, r := range e.active {
			runs = append(runs, r)
		}
		e.mu.Unlock()
		for _, r := range runs {
			m := r.ns.Mappings()
			if len(m) == r.saved {
				continue
			}
			data, _ := json.Marshal(m)
			tmp := r.mapsFile + ".tmp"
			if os.WriteFile(tmp, data, 0o600) == nil && os.Rename(tmp, r.mapsFile) == nil {
				r.saved = len(m)
			}
		}
	}
}
