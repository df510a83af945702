package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/cortexrt/cortex/internal/cgroups"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/events"
	"github.com/cortexrt/cortex/internal/logkey"
	"github.com/cortexrt/cortex/internal/logs"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/runtimes"
	"github.com/cortexrt/cortex/internal/store"
	"golang.org/x/net/bpf"
)

// Options configure a Supervisor.
type Options struct {
	Store    *store.Store
	Logs     *logs.Store
	Cgroups  cgroups.Manager
	Runtimes *runtimes.Registry
	Logger   *slog.Logger
	// RunDir holds per-agent runtime files (FIFOs, exit status, mount
	// points, sockets): run/cortex/agents/<project>/<agent>.
	RunDir string
	// DataDir holds write grants of projects run from a bundle file:
	// var/lib/cortex/projects/<project>/data.
	DataDir string
	// ShareDir holds the runtime shims and SDKs (usr/lib/cortex).
	ShareDir string
	// LayersDir is the host's layer store: an agent's packages are the
	// layer LayersDir/<ResolvedAgent.Packages.Layer>.
	LayersDir string
	// InitPath is the binary re-exec'd as sandbox init ("" = this one).
	InitPath string
	// Sandbox decides which walls agents get.
	Sandbox SandboxOptions
	// Wirings connect the daemon's subsystems to every run, in order.
	Wirings []Wiring
	// BackoffInitial and BackoffMax bound the restart delay.
	BackoffInitial, BackoffMax time.Duration
	// KillGrace is the default SIGTERM-to-SIGKILL wait.
	KillGrace time.Duration
	// Events receives the agents' state changes, OOM kills and restarts
	// (nil: a private stream, for Subscribe only).
	Events *events.Stream
}

// SandboxOptions select the walls.
type SandboxOptions struct {
	// Confine builds the fresh root, drops to an unprivileged uid and
	// applies no_new_privs, capabilities, Landlock and seccomp.
	Confine bool
	Seccomp bool
	// SeccompPrograms are the compiled filters handed to every sandbox.
	SeccompPrograms [][]bpf.RawInstruction
	// Landlock is applied where the kernel has it.
	Landlock bool
	// UIDBase is the first uid handed to agents.
	UIDBase int
	// TmpSize caps each agent's /tmp.
	TmpSize int64
	// Missing lists the walls the host lacks and the daemon runs without
	// (degraded mode); shown by list and inspect.
	Missing []string
	// WallDetails describe each wall for inspect (name -> detail).
	WallDetails map[string]string
}

// Supervisor runs agents.
type Supervisor struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	agents map[string]*agent // by project/agent
	uids   map[int]string    // allocated uid -> project/agent
	events *events.Stream
	closed bool
	wg     sync.WaitGroup
}

// New returns a Supervisor. Call Recover before serving requests.
func New(opts Options) *Supervisor {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.BackoffInitial <= 0 {
		opts.BackoffInitial = 200 * time.Millisecond
	}
	if opts.BackoffMax < opts.BackoffInitial {
		opts.BackoffMax = 30 * time.Second
	}
	if opts.KillGrace <= 0 {
		opts.KillGrace = 10 * time.Second
	}
	if opts.Events == nil {
		opts.Events = events.New()
	}
	if opts.Sandbox.UIDBase <= 0 {
		opts.Sandbox.UIDBase = 1600000
	}
	return &Supervisor{
		opts:   opts,
		log:    opts.Logger.With(logkey.Subsystem, "supervisor"),
		agents: map[string]*agent{},
		uids:   map[int]string{},
		events: opts.Events,
	}
}

func key(project, agent string) string { return project + "/" + agent }

// Close stops watching agents without stopping them (they keep running
// and a new daemon reattaches). It waits for the watchers to return.
func (s *Supervisor) Close() {
	s.mu.Lock()
	s.closed = true
	var all []*agent
	for _, a := range s.agents {
		all = append(all, a)
	}
	s.mu.Unlock()
	for _, a := range all {
		a.detach()
	}
	s.wg.Wait()
}

// Subscribe streams state events of project ("" = all), from the
// daemon's event stream. The channel is buffered; a subscriber that falls
// far behind misses events (it can re-read state with List). Call the
// returned func to unsubscribe.
func (s *Supervisor) Subscribe(project string) (<-chan Event, func()) {
	filter := events.OfType(events.AgentState)
	if project != "" {
		filter = func(e events.Event) bool { return e.Type == events.AgentState && e.Project == project }
	}
	sub := s.events.Subscribe("supervisor:"+project, 1024, filter)
	out := make(chan Event, 1)
	go func() {
		defer close(out)
		for e := range sub.C {
			d, _ := e.Detail.(events.AgentStateDetail)
			out <- Event{Time: e.Time, Project: e.Project, Agent: e.Agent, Run: e.Run, State: State(d.State),
				Reason: d.Reason, ExitCode: d.ExitCode, RestartPending: d.RestartPending}
		}
	}()
	return out, func() {
		sub.Close()
		// Drain what the converter still holds so it can end.
		for range out {
		}
	}
}

// publish emits an agent's state change on the event stream.
func (s *Supervisor) publish(e Event) {
	s.events.Emit(events.Event{Time: e.Time, Project: e.Project, Agent: e.Agent, Run: e.Run,
		Detail: events.AgentStateDetail{State: string(e.State), Reason: e.Reason, ExitCode: e.ExitCode, RestartPending: e.RestartPending}})
}

// Run starts (or restarts) a project's agents. If the project has active
// agents it fails with AlreadyExists.
func (s *Supervisor) Run(ctx context.Context, p store.Project, agents []manifest.ResolvedAgent) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errdefs.New(errdefs.Unavailable, "daemon is shutting down")
	}
	for k, a := range s.agents {
		if a.project == p.Name && a.status().State.Active() {
			s.mu.Unlock()
			return errdefs.WithHint(errdefs.New(errdefs.AlreadyExists, "project %q is running (agent %s is %s)", p.Name, k, a.status().State),
				"cortex stop "+p.Name+", then run it again")
		}
	}
	// Forget the old agents of the project (their history stays until rm).
	for k, a := range s.agents {
		if a.project == p.Name {
			a.waitDone()
			delete(s.agents, k)
			delete(s.uids, a.uid)
		}
	}
	s.mu.Unlock()

	if err := s.opts.Store.PutProject(ctx, p); err != nil {
		return err
	}
	old, err := s.opts.Store.ListAgents(ctx, p.Name)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, ra := range agents {
		keep[ra.Name] = true
	}
	for _, o := range old {
		if !keep[o.Name] {
			// An agent dropped from the manifest: forget it.
			_ = s.opts.Store.PutAgent(ctx, store.Agent{Project: o.Project, Name: o.Name, Spec: o.Spec, State: string(Stopped), Reason: "Removed", Desired: "stopped"})
		}
	}
	var started []*agent
	for _, ra := range agents {
		spec, _ := json.Marshal(ra)
		a := s.newAgent(p, ra)
		s.mu.Lock()
		a.uid = s.allocUID(key(p.Name, ra.Name))
		s.agents[key(p.Name, ra.Name)] = a
		s.mu.Unlock()
		a.rec = store.Agent{Project: p.Name, Name: ra.Name, Spec: spec, State: string(Starting), Desired: "running", UID: a.uid}
		started = append(started, a)
	}
	for _, a := range started {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			a.loop(nil, nil)
		}()
	}
	return nil
}

// allocUID hands out the lowest free uid; s.mu is held.
func (s *Supervisor) allocUID(owner string) int {
	for i := 0; ; i++ {
		uid := s.opts.Sandbox.UIDBase + i
		if _, used := s.uids[uid]; !used {
			s.uids[uid] = owner
			return uid
		}
	}
}

// Find returns the agent project/name, or NotFound.
func (s *Supervisor) find(project, name string) (*agent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.agents[key(project, name)]
	if !ok {
		return nil, errdefs.WithHint(errdefs.New(errdefs.NotFound, "agent %s/%s not found", project, name), "cortex list -a")
	}
	return a, nil
}

// Kill stops an agent: SIGTERM, then SIGKILL after grace (0 = the
// default). The agent ends stopped, reason Killed, and is not restarted.
// It returns once the agent has stopped.
func (s *Supervisor) Kill(ctx context.Context, project, name string, grace time.Duration) error {
	a, err := s.find(project, name)
	if err != nil {
		return err
	}
	if grace <= 0 {
		grace = s.opts.KillGrace
	}
	return a.kill(ctx, grace)
}

// Suspend freezes an agent's cgroup.
func (s *Supervisor) Suspend(ctx context.Context, project, name string) error {
	a, err := s.find(project, name)
	if err != nil {
		return err
	}
	return a.suspend(ctx)
}

// Resume thaws a suspended agent.
func (s *Supervisor) Resume(ctx context.Context, project, name string) error {
	a, err := s.find(project, name)
	if err != nil {
		return err
	}
	return a.resume(ctx)
}

// Stop kills every active agent of a project, in parallel.
func (s *Supervisor) Stop(ctx context.Context, project string, grace time.Duration) error {
	if grace <= 0 {
		grace = s.opts.KillGrace
	}
	agents, err := s.projectAgents(project)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(agents))
	for i, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.kill(ctx, grace); err != nil && !errdefs.IsFailedPrecondition(err) {
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *Supervisor) projectAgents(project string) ([]*agent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*agent
	for _, a := range s.agents {
		if a.project == project {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		if _, err := s.opts.Store.GetProject(context.Background(), project); err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// Remove deletes a stopped project: state, logs, runtime files. With
// force it stops the project first.
func (s *Supervisor) Remove(ctx context.Context, project string, force bool) error {
	agents, err := s.projectAgents(project)
	if err != nil {
		return err
	}
	for _, a := range agents {
		if a.status().State.Active() || a.status().RestartPending {
			if !force {
				return errdefs.WithHint(errdefs.New(errdefs.FailedPrecondition, "project %q has running agents", project), "cortex stop "+project+", or cortex rm -f "+project)
			}
		}
	}
	if force {
		if err := s.Stop(ctx, project, 0); err != nil {
			return err
		}
	}
	s.mu.Lock()
	for _, a := range agents {
		a.waitDone()
		delete(s.agents, key(a.project, a.name))
		delete(s.uids, a.uid)
	}
	s.mu.Unlock()
	p, err := s.opts.Store.GetProject(ctx, project)
	if err == nil && p.BundleDir != "" {
		_ = os.RemoveAll(p.BundleDir)
	}
	_ = os.RemoveAll(filepath.Join(s.opts.RunDir, project))
	if s.opts.Logs != nil {
		_ = s.opts.Logs.Remove(project)
	}
	return s.opts.Store.DeleteProject(ctx, project)
}

// List returns the agents' status; all=false keeps only active agents
// and agents waiting to restart.
func (s *Supervisor) List(ctx context.Context, project string, all bool) []Status {
	s.mu.Lock()
	var agents []*agent
	for _, a := range s.agents {
		if project == "" || a.project == project {
			agents = append(agents, a)
		}
	}
	s.mu.Unlock()
	var out []Status
	for _, a := range agents {
		st := a.status()
		if !all && !st.State.Active() && !st.RestartPending {
			continue
		}
		a.fillUsage(&st)
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Project != out[j].Project {
			return out[i].Project < out[j].Project
		}
		return out[i].Agent < out[j].Agent
	})
	return out
}

// Inspect returns everything known of one agent.
func (s *Supervisor) Inspect(ctx context.Context, project, name string) (Inspection, error) {
	a, err := s.find(project, name)
	if err != nil {
		return Inspection{}, err
	}
	return a.inspect(ctx)
}

// Resolve turns a user's agent reference ("project/agent" or "agent")
// into project and agent names. A bare name must be unambiguous.
func (s *Supervisor) Resolve(ref string) (string, string, error) {
	for i := 0; i < len(ref); i++ {
		if ref[i] == '/' {
			p, n := ref[:i], ref[i+1:]
			if _, err := s.find(p, n); err != nil {
				return "", "", err
			}
			return p, n, nil
		}
	}
	s.mu.Lock()
	var cands []string
	var found *agent
	for k, a := range s.agents {
		if a.name == ref {
			cands = append(cands, k)
			found = a
		}
	}
	s.mu.Unlock()
	sort.Strings(cands)
	switch len(cands) {
	case 0:
		return "", "", errdefs.WithHint(errdefs.New(errdefs.NotFound, "no agent named %q", ref), "cortex list -a")
	case 1:
		return found.project, found.name, nil
	}
	return "", "", errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "agent name %q is ambiguous: %v", ref, cands), fmt.Sprintf("name it as project/agent, e.g. %s", cands[0]))
}
