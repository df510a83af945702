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

// attachers are the subsystems added to every agent's sandbox, in order.
func (d *Daemon) attachers() []supervisor.Attacher {
	var out []supervisor.Attacher
	if d.bus != nil {
		out = append(out, busAttacher{srv: d.bus, confined: d.walls.sandboxOptions(0).Confine})
	}
	if d.llm != nil {
		out = append(out, llmAttacher{gw: d.llm})
	}
	if d.egress != nil {
		out = append(out, d.egress)
	}
	if d.learning != nil {
		out = append(out, learnAttacher{d.learning})
	}
	return out
}

// egressAttacher connects each agent's network namespace to the egress
// gateway: the agent's resolv.conf and proxy variables point at it, its
// refusals go into the agent's log stream, and its synthetic DNS mappings
// are saved beside its runtime files so a restarted daemon keeps them.
type egressAttacher struct {
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
	att      *egress.Netns
	mapsFile string
	saved    int
}

var _ supervisor.Attacher = (*egressAttacher)(nil)
var _ supervisor.Reattacher = (*egressAttacher)(nil)

func newEgressAttacher(gw *egress.Gateway, ls *logs.Store, ev *events.Stream) *egressAttacher {
	return &egressAttacher{gw: gw, logs: ls, events: ev, active: map[string]*egressRun{}}
}

// Prepare implements supervisor.Attacher: the agent's resolver is the
// gateway, and agents with network.access get the proxy variables.
func (e *egressAttacher) Prepare(ctx context.Context, a supervisor.AgentInfo, spec *sandbox.Spec) error {
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

// Attach implements supervisor.Attacher: the gateway serves the agent's
// network namespace.
func (e *egressAttacher) Attach(ctx context.Context, a supervisor.AgentInfo, pid int) (io.Closer, error) {
	return e.attach(ctx, a, pid, nil)
}

// Reattach implements supervisor.Reattacher: after a daemon restart, the
// gateway serves the agent's namespace again with the mappings it had.
func (e *egressAttacher) Reattach(ctx context.Context, a supervisor.AgentInfo, pid int) (io.Closer, error) {
	restore := map[string]netip.Addr{}
	if data, err := os.ReadFile(filepath.Join(a.RunDir, "egress-mappings.json")); err == nil {
		_ = json.Unmarshal(data, &restore)
	}
	return e.attach(ctx, a, pid, restore)
}

func (e *egressAttacher) attach(ctx context.Context, a supervisor.AgentInfo, pid int, restore map[string]netip.Addr) (*egressCloser, error) {
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
	// The attachment's connections carry who they come from, for the
	// internal services (the LLM gateway).
	att, err := e.gw.ServeNetns(withAgentIdent(ctx, project, agent), fd, egress.NetnsOptions{
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
	r := &egressRun{att: att, mapsFile: filepath.Join(a.RunDir, "egress-mappings.json")}
	key := project + "/" + agent
	e.mu.Lock()
	e.active[key] = r
	e.mu.Unlock()
	return &egressCloser{e: e, key: key, r: r}, nil
}

type egressCloser struct {
	e   *egressAttacher
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
	return c.r.att.Close()
}

// Stats returns an agent's egress counters, if it is attached.
func (e *egressAttacher) Stats(project, agent string) (egress.Counters, bool) {
	e.mu.Lock()
	r, ok := e.active[project+"/"+agent]
	e.mu.Unlock()
	if !ok {
		return egress.Counters{}, false
	}
	return r.att.Stats(), true
}

// saveLoop writes each attachment's synthetic mappings to its runtime
// directory when they grew, until ctx is done.
func (e *egressAttacher) saveLoop(ctx context.Context) {
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
			m := r.att.Mappings()
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
