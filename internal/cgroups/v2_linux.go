package cgroups

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/cgroups/v3/cgroup2"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/logkey"
)

// v2Manager drives the unified hierarchy mounted at mount.
type v2Manager struct {
	parent string
	log    *slog.Logger
	mount  string          // cgroup2 mount point
	root   string          // root of the mount in the hierarchy (for /proc/<pid>/cgroup)
	avail  map[string]bool // v2Wanted controllers the mount offers

	noCgroupKill bool // tests: use the freeze-signal-thaw loop even where cgroup.kill exists

	mu sync.Mutex // serialises Create and the pruning in Delete
}

var _ Manager = (*v2Manager)(nil)

func newV2(parent string, logger *slog.Logger, mountPoint, mountRoot string) (*v2Manager, error) {
	if _, err := os.Stat(filepath.Join(mountPoint, "cgroup.controllers")); err != nil {
		return nil, errdefs.Wrap(errdefs.FailedPrecondition, fmt.Errorf("cgroup v2 at %s: %w", mountPoint, err))
	}
	if !strings.HasPrefix(mountRoot, "/") {
		mountRoot = "/" + mountRoot
	}
	m := &v2Manager{parent: parent, log: logger, mount: mountPoint, root: mountRoot, avail: map[string]bool{}}
	offered := readControllers(mountPoint)
	for _, c := range v2Wanted {
		if slices.Contains(offered, c) {
			m.avail[c] = true
		} else {
			logger.Warn("cgroup v2 controller not available; limits that need it will be refused", "controller", c, "mount", mountPoint)
		}
	}
	return m, nil
}

func (m *v2Manager) Version() int { return 2 }

func (m *v2Manager) has(controller string) bool { return m.avail[controller] }

func (m *v2Manager) dir(rel string) string { return filepath.Join(m.mount, rel) }

// resources enables every available controller (so usage and OOM events
// are accounted even without a ceiling) and sets the ceilings of l.
// memory.swap.max is written separately: it is absent without swap
// accounting.
func (m *v2Manager) resources(l Limits) *cgroup2.Resources {
	r := &cgroup2.Resources{}
	if m.avail["memory"] {
		r.Memory = &cgroup2.Memory{}
		if l.Memory > 0 {
			mem := l.Memory
			r.Memory.Max = &mem
		}
	}
	if m.avail["cpu"] {
		r.CPU = &cgroup2.CPU{}
		if l.CPU > 0 {
			quota, period := l.quotaUS(), uint64(cpuPeriodUS)
			r.CPU.Max = cgroup2.NewCPUMax(&quota, &period)
		}
	}
	if m.avail["pids"] {
		r.Pids = &cgroup2.Pids{Max: l.Pids}
	}
	return r
}

func (m *v2Manager) Create(name string, l Limits) (Group, error) {
	if err := validName("group", name); err != nil {
		return nil, err
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	for _, need := range []struct {
		set  bool
		ctrl string
	}{{l.Memory > 0, "memory"}, {l.CPU > 0, "cpu"}, {l.Pids > 0, "pids"}} {
		if need.set && !m.avail[need.ctrl] {
			return nil, errdefs.WithHint(
				errdefs.New(errdefs.FailedPrecondition, "create cgroup %s: the %s limit needs the v2 %s controller, which %s does not offer", name, need.ctrl, need.ctrl, m.mount),
				"enable it in "+filepath.Join(m.mount, "cgroup.subtree_control")+" of every ancestor, or run cortexd where it is delegated")
		}
	}
	rel := groupRel(m.parent, name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := claim(m.dir(rel)); err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", name, err)
	}
	// NewManager enables the controllers in every ancestor's
	// cgroup.subtree_control, then writes memory.max, cpu.max, pids.max.
	cg, err := cgroup2.NewManager(m.mount, rel, m.resources(l))
	if err == nil && l.Memory > 0 {
		err = m.swapOff(rel)
	}
	if err != nil {
		m.removeLocked(rel)
		return nil, fmt.Errorf("create cgroup %s with limits %+v: %w", name, l, err)
	}
	m.log.Debug("cgroup created", logkey.Cgroup, name, "version", 2, "cpu", l.CPU, "memory", l.Memory, "pids", l.Pids)
	return &v2Group{m: m, name: name, rel: rel, cg: cg}, nil
}

// swapOff writes memory.swap.max=0 where the kernel accounts swap.
func (m *v2Manager) swapOff(rel string) error {
	file := filepath.Join(m.dir(rel), "memory.swap.max")
	if !exists(file) {
		m.log.Warn("cgroup v2 without memory.swap.max: swap usage is not capped; boot with swapaccount=1", logkey.Cgroup, rel)
		return nil
	}
	if err := os.WriteFile(file, []byte("0"), 0); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}

func (m *v2Manager) Load(name string) (Group, error) {
	if err := validName("group", name); err != nil {
		return nil, err
	}
	rel := groupRel(m.parent, name)
	if !exists(m.dir(rel)) {
		return nil, errdefs.New(errdefs.NotFound, "cgroup %s not found", name)
	}
	cg, err := cgroup2.Load(rel, cgroup2.WithMountpoint(m.mount))
	if err != nil {
		return nil, fmt.Errorf("load cgroup %s: %w", name, err)
	}
	return &v2Group{m: m, name: name, rel: rel, cg: cg}, nil
}

func (m *v2Manager) List() ([]string, error) {
	names, err := listDirs(m.mount, groupRel(m.parent, ""))
	if err != nil {
		return nil, err
	}
	return leaves(names), nil
}

func (m *v2Manager) RemoveParent() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return removeParent([]string{m.mount}, groupRel(m.parent, ""))
}

// removeLocked removes rel and prunes empty intermediate directories.
// m.mu must be held.
func (m *v2Manager) removeLocked(rel string) error {
	if err := removeTree(m.dir(rel), time.Now().Add(removeTimeout)); err != nil {
		return err
	}
	prune(m.mount, groupRel(m.parent, ""), rel)
	return nil
}

// v2Group is one group of a v2Manager.
type v2Group struct {
	m    *v2Manager
	name string
	rel  string
	cg   *cgroup2.Manager
}

var _ Group = (*v2Group)(nil)

func (g *v2Group) Name() string { return g.name }
func (g *v2Group) Path() string { return g.m.dir(g.rel) }

func (g *v2Group) file(name string) string { return filepath.Join(g.Path(), name) }

func (g *v2Group) AddProc(pid int) error {
	if pid <= 0 {
		return errdefs.New(errdefs.InvalidArgument, "add process %d to cgroup %s: invalid pid", pid, g.name)
	}
	if err := g.cg.AddProc(uint64(pid)); err != nil {
		return addProcErr(err, pid, g.name)
	}
	return nil
}

func (g *v2Group) Procs() ([]int, error) {
	ps, err := g.cg.Procs(true)
	if err != nil {
		return nil, notFound(err, "list processes of cgroup "+g.name)
	}
	out := make([]int, 0, len(ps))
	for _, p := range ps {
		out = append(out, int(p))
	}
	return unionSorted(out), nil
}

// events reads key from cgroup.events ("populated", "frozen").
func (g *v2Group) events(key string) (uint64, error) {
	data, err := os.ReadFile(g.file("cgroup.events"))
	if err != nil {
		return 0, notFound(err, "read cgroup.events of cgroup "+g.name)
	}
	v, ok := parseFlatKeyed(string(data), key)
	if !ok {
		return 0, errdefs.New(errdefs.Unsupported, "cgroup %s: cgroup.events has no %q (needs Linux 5.2)", g.name, key)
	}
	return v, nil
}

// setFrozen writes cgroup.freeze and waits until cgroup.events reports
// the state. containerd only reads cgroup.freeze back, which is the
// request, not the state.
func (g *v2Group) setFrozen(frozen bool, timeout time.Duration) error {
	val, want := "0", uint64(0)
	if frozen {
		val, want = "1", 1
	}
	if err := os.WriteFile(g.file("cgroup.freeze"), []byte(val), 0); err != nil {
		if errors.Is(err, os.ErrNotExist) && exists(g.Path()) {
			return errdefs.New(errdefs.Unsupported, "cgroup %s: no cgroup.freeze (needs Linux 5.2)", g.name)
		}
		return notFound(err, "write cgroup.freeze of cgroup "+g.name)
	}
	err := waitFor(timeout, func() (bool, error) {
		v, err := g.events("frozen")
		return v == want, err
	})
	if errors.Is(err, errTimeout) {
		return errdefs.New(errdefs.Unavailable, "cgroup %s: cgroup.events frozen not %d after %s", g.name, want, timeout)
	}
	return err
}

func (g *v2Group) Freeze() error {
	if err := g.setFrozen(true, freezeTimeout); err != nil {
		if errdefs.IsUnavailable(err) {
			_ = g.setFrozen(false, freezeTimeout)
		}
		return fmt.Errorf("freeze: %w", err)
	}
	return nil
}

func (g *v2Group) Thaw() error {
	if err := g.setFrozen(false, freezeTimeout); err != nil {
		return fmt.Errorf("thaw: %w", err)
	}
	return nil
}

func (g *v2Group) Frozen() (bool, error) {
	v, err := g.events("frozen")
	return v == 1, err
}

func (g *v2Group) Stats() (Stats, error) {
	if !exists(g.Path()) {
		return Stats{}, errdefs.New(errdefs.NotFound, "read stats of cgroup %s: cgroup does not exist", g.name)
	}
	mt, err := g.cg.StatFiltered(cgroup2.StatPids | cgroup2.StatCPU | cgroup2.StatMemory | cgroup2.StatMemoryEvents)
	if err != nil {
		return Stats{}, notFound(err, "read stats of cgroup "+g.name)
	}
	var s Stats
	if mt.CPU != nil {
		s.CPUUsageNS = mt.CPU.UsageUsec * 1000
	}
	if mt.Memory != nil {
		s.MemoryUsage = mt.Memory.Usage
		s.MemoryMax = normLimit(mt.Memory.UsageLimit)
		s.MemoryPeak = mt.Memory.MaxUsage
	}
	if mt.MemoryEvents != nil {
		s.OOMKills = mt.MemoryEvents.OomKill
	}
	if g.m.avail["pids"] && mt.Pids != nil {
		s.Pids = mt.Pids.Current
	} else if ts, err := g.cg.Threads(true); err == nil {
		s.Pids = uint64(len(ts)) // no pids controller: count the threads
	}
	return s, nil
}

func (g *v2Group) OOMKills() (uint64, error) {
	if !exists(g.Path()) {
		return 0, errdefs.New(errdefs.NotFound, "read OOM kills of cgroup %s: cgroup does not exist", g.name)
	}
	if !g.m.avail["memory"] {
		return 0, nil // no memory controller, no ceiling, no cgroup OOM kill
	}
	mt, err := g.cg.StatFiltered(cgroup2.StatMemoryEvents)
	if err != nil {
		return 0, notFound(err, "read memory.events of cgroup "+g.name)
	}
	if mt.MemoryEvents == nil {
		return 0, errdefs.New(errdefs.NotFound, "read OOM kills of cgroup %s: no memory.events", g.name)
	}
	return mt.MemoryEvents.OomKill, nil
}

func (g *v2Group) MemoryStat() (MemoryStat, error) {
	st, err := readFlat(g.file("memory.stat"), "anon", "file", "shmem", "kernel", "kernel_stack", "slab", "pagetables", "sock")
	if err != nil {
		return MemoryStat{}, notFound(err, "read memory.stat of cgroup "+g.name)
	}
	kernel := st["kernel"]
	if kernel == 0 { // before Linux 5.18
		kernel = st["kernel_stack"] + st["slab"] + st["pagetables"]
	}
	return MemoryStat{
		Usage: readUint(g.file("memory.current")), Peak: readUint(g.file("memory.peak")),
		Anon: st["anon"], File: st["file"], Shmem: st["shmem"], Kernel: kernel, Sock: st["sock"],
	}, nil
}

func (g *v2Group) Kill() error {
	if !exists(g.Path()) {
		return errdefs.New(errdefs.NotFound, "kill cgroup %s: cgroup does not exist", g.name)
	}
	return g.kill()
}

// kill writes cgroup.kill where the kernel has it (5.14+), which kills
// every task including ones forking right now, then waits until the
// group is empty; older kernels get the freeze-signal-thaw loop.
// containerd's Kill does not wait, and logs through logrus.
func (g *v2Group) kill() error {
	killFile := g.file("cgroup.kill")
	if exists(killFile) && !g.m.noCgroupKill {
		if err := os.WriteFile(killFile, []byte("1"), 0); err != nil {
			return notFound(err, "write cgroup.kill of cgroup "+g.name)
		}
		err := waitFor(killTimeout, func() (bool, error) {
			ps, err := g.Procs()
			return len(ps) == 0, err
		})
		if errors.Is(err, errTimeout) {
			ps, _ := g.Procs()
			return errdefs.New(errdefs.Unavailable, "kill cgroup %s: %d processes left after %s: %v", g.name, len(ps), killTimeout, ps)
		}
		return err
	}
	k := killer{name: g.name, procs: g.Procs, member: procMember([]hierPath{{"", path.Join(g.m.root, g.rel)}})}
	if exists(g.file("cgroup.freeze")) {
		k.freeze = func() error { return g.setFrozen(true, killFreezeMax) }
		k.thaw = func() error { return g.setFrozen(false, freezeTimeout) }
	}
	return killAll(k)
}

func (g *v2Group) Delete() error {
	if !exists(g.Path()) {
		return nil
	}
	if err := g.kill(); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete: %w", err)
	}
	g.m.mu.Lock()
	defer g.m.mu.Unlock()
	if err := g.m.removeLocked(g.rel); err != nil {
		return fmt.Errorf("delete cgroup %s: %w", g.name, err)
	}
	g.m.log.Debug("cgroup deleted", logkey.Cgroup, g.name, "version", 2)
	return nil
}
