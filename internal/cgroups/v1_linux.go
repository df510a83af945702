package cgroups

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/logkey"
)

// hier is one v1 hierarchy the driver uses.
type hier struct {
	name  string // controller
	point string // mount point
	root  string // root of the mount inside the hierarchy (for /proc/<pid>/cgroup)
}

func (h hier) dir(rel string) string { return filepath.Join(h.point, rel) }

// v1Manager drives cgroup v1: one directory per group in each of the
// memory, cpu, cpuacct, pids and freezer hierarchies that are mounted.
type v1Manager struct {
	parent string
	log    *slog.Logger
	hiers  []hier // usable hierarchies, v1Wanted order; hiers[0] is memory
	dirs   []hier // hiers with duplicate mount points (co-mounted controllers) removed
	subsys []cgroup1.Subsystem
	memsw  bool // memory.memsw.* exists

	mu sync.Mutex // serialises Create and the pruning in Delete
}

var _ Manager = (*v1Manager)(nil)

func newV1(parent string, logger *slog.Logger, l layout) (*v1Manager, error) {
	m := &v1Manager{parent: parent, log: logger}
	for _, name := range v1Wanted {
		point, ok := l.v1Point[name]
		if !ok {
			if name == "memory" {
				return nil, errdefs.WithHint(
					errdefs.New(errdefs.FailedPrecondition, "cgroup v1: memory controller not mounted"),
					"mount it: mount -t cgroup -o memory cgroup /sys/fs/cgroup/memory")
			}
			logger.Warn("cgroup v1 controller not mounted; limits that need it will be refused", "controller", name)
			continue
		}
		root, err := containerdRoot(name, point)
		if err != nil {
			if name == "memory" {
				return nil, errdefs.Wrap(errdefs.FailedPrecondition, fmt.Errorf("cgroup v1 memory controller: %w", err))
			}
			logger.Warn("cgroup v1 controller unusable", "controller", name, logkey.Err, err)
			continue
		}
		h := hier{name: name, point: point, root: l.v1Root[name]}
		if !strings.HasPrefix(h.root, "/") {
			h.root = "/" + h.root
		}
		m.hiers = append(m.hiers, h)
		dup := false
		for _, d := range m.dirs {
			dup = dup || d.point == point
		}
		if !dup {
			m.dirs = append(m.dirs, h)
		}
		switch name {
		case "memory":
			_, err := os.Stat(filepath.Join(point, "memory.memsw.limit_in_bytes"))
			m.memsw = err == nil
			if !m.memsw {
				logger.Warn("cgroup v1 without memory.memsw.*: swap is kept off with memory.swappiness=0 only; boot with swapaccount=1 to cap it")
			}
			m.subsys = append(m.subsys, cgroup1.NewMemory(root, cgroup1.OptionalSwap()))
		case "cpu":
			m.subsys = append(m.subsys, cgroup1.NewCpu(root))
		case "cpuacct":
			m.subsys = append(m.subsys, cgroup1.NewCpuacct(root))
		case "pids":
			m.subsys = append(m.subsys, cgroup1.NewPids(root))
		case "freezer":
			m.subsys = append(m.subsys, cgroup1.NewFreezer(root))
		}
	}
	return m, nil
}

func (m *v1Manager) Version() int { return 1 }

func (m *v1Manager) hierarchy() ([]cgroup1.Subsystem, error) { return m.subsys, nil }

func (m *v1Manager) has(controller string) bool {
	for _, h := range m.hiers {
		if h.name == controller {
			return true
		}
	}
	return false
}

func (m *v1Manager) hierOf(controller string) (hier, bool) {
	for _, h := range m.hiers {
		if h.name == controller {
			return h, true
		}
	}
	return hier{}, false
}

func (m *v1Manager) resources(l Limits) *specs.LinuxResources {
	r := &specs.LinuxResources{}
	if l.Memory > 0 {
		mem := l.Memory
		// TCP socket buffers are charged to memory.max on v2; v1 keeps
		// them in a counter of their own, unlimited unless set: the same
		// ceiling there bounds them too.
		tcp := mem
		r.Memory = &specs.LinuxMemory{Limit: &mem, KernelTCP: &tcp}
		if m.memsw {
			r.Memory.Swap = &mem
		} else {
			zero := uint64(0)
			r.Memory.Swappiness = &zero
		}
	}
	if l.CPU > 0 {
		period, quota := uint64(cpuPeriodUS), l.quotaUS()
		r.CPU = &specs.LinuxCPU{Period: &period, Quota: &quota}
	}
	if l.Pids > 0 {
		pids := l.Pids
		r.Pids = &specs.LinuxPids{Limit: &pids}
	}
	return r
}

func (m *v1Manager) Create(name string, l Limits) (Group, error) {
	if err := validName("group", name); err != nil {
		return nil, err
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	for _, need := range []struct {
		set  bool
		ctrl string
	}{{l.CPU > 0, "cpu"}, {l.Pids > 0, "pids"}} {
		if need.set && !m.has(need.ctrl) {
			return nil, errdefs.New(errdefs.FailedPrecondition, "create cgroup %s: the %s limit needs the v1 %s controller, which this host lacks", name, need.ctrl, need.ctrl)
		}
	}
	rel := groupRel(m.parent, name)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, h := range m.dirs {
		if exists(h.dir(rel)) {
			return nil, errdefs.New(errdefs.AlreadyExists, "create cgroup %s: already exists (%s)", name, h.dir(rel))
		}
	}
	if err := claim(m.hiers[0].dir(rel)); err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", name, err)
	}
	cg, err := cgroup1.New(cgroup1.StaticPath(rel), m.resources(l), cgroup1.WithHierarchy(m.hierarchy))
	if err != nil {
		m.removeLocked(rel)
		return nil, fmt.Errorf("create cgroup %s with limits %+v: %w", name, l, err)
	}
	m.log.Debug("cgroup created", logkey.Cgroup, name, "version", 1, "cpu", l.CPU, "memory", l.Memory, "pids", l.Pids)
	return &v1Group{m: m, name: name, rel: rel, cg: cg}, nil
}

func (m *v1Manager) Load(name string) (Group, error) {
	if err := validName("group", name); err != nil {
		return nil, err
	}
	rel := groupRel(m.parent, name)
	cg, err := cgroup1.Load(cgroup1.StaticPath(rel), cgroup1.WithHierarchy(m.hierarchy))
	if err != nil {
		if errors.Is(err, cgroup1.ErrCgroupDeleted) {
			return nil, errdefs.New(errdefs.NotFound, "cgroup %s not found", name)
		}
		return nil, fmt.Errorf("load cgroup %s: %w", name, err)
	}
	return &v1Group{m: m, name: name, rel: rel, cg: cg}, nil
}

func (m *v1Manager) List() ([]string, error) {
	parentRel := groupRel(m.parent, "")
	var all []string
	for _, h := range m.dirs {
		names, err := listDirs(h.point, parentRel)
		if err != nil {
			return nil, err
		}
		all = append(all, names...)
	}
	return leaves(all), nil
}

func (m *v1Manager) RemoveParent() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	points := make([]string, 0, len(m.dirs))
	for _, h := range m.dirs {
		points = append(points, h.point)
	}
	return removeParent(points, groupRel(m.parent, ""))
}

// removeLocked removes rel from every hierarchy and prunes empty
// intermediate directories. m.mu must be held.
func (m *v1Manager) removeLocked(rel string) error {
	deadline := time.Now().Add(removeTimeout)
	var errs []error
	for _, h := range m.dirs {
		if err := removeTree(h.dir(rel), deadline); err != nil {
			errs = append(errs, err)
			continue
		}
		prune(h.point, groupRel(m.parent, ""), rel)
	}
	return errors.Join(errs...)
}

// v1Group is one group of a v1Manager.
type v1Group struct {
	m    *v1Manager
	name string
	rel  string
	cg   cgroup1.Cgroup
}

var _ Group = (*v1Group)(nil)

func (g *v1Group) Name() string { return g.name }
func (g *v1Group) Path() string { return g.m.hiers[0].dir(g.rel) }

func (g *v1Group) AddProc(pid int) error {
	if pid <= 0 {
		return errdefs.New(errdefs.InvalidArgument, "add process %d to cgroup %s: invalid pid", pid, g.name)
	}
	// containerd writes cgroup.procs of every hierarchy, in order, and
	// retries the EINVAL a task still being created gets.
	if err := g.cg.AddProc(uint64(pid)); err != nil {
		return addProcErr(err, pid, g.name)
	}
	return nil
}

func (g *v1Group) Procs() ([]int, error) {
	var all [][]int
	for _, h := range g.m.dirs {
		if !exists(h.dir(g.rel)) {
			continue // this hierarchy lost the group (crash mid-delete)
		}
		ps, err := g.cg.Processes(cgroup1.Name(h.name), true)
		if err != nil {
			if !exists(h.dir(g.rel)) {
				continue // removed meanwhile
			}
			return nil, fmt.Errorf("list processes of cgroup %s: %w", g.name, err)
		}
		pids := make([]int, 0, len(ps))
		for _, p := range ps {
			pids = append(pids, p.Pid)
		}
		all = append(all, pids)
	}
	if len(all) == 0 && !g.exists() {
		return nil, errdefs.New(errdefs.NotFound, "list processes of cgroup %s: cgroup does not exist", g.name)
	}
	return unionSorted(all...), nil
}

func (g *v1Group) exists() bool {
	for _, h := range g.m.dirs {
		if exists(h.dir(g.rel)) {
			return true
		}
	}
	return false
}

func (g *v1Group) freezerFile() (string, error) {
	h, ok := g.m.hierOf("freezer")
	if !ok {
		return "", errdefs.WithHint(
			errdefs.New(errdefs.Unsupported, "freeze cgroup %s: the v1 freezer controller is not mounted", g.name),
			"mount it: mount -t cgroup -o freezer cgroup /sys/fs/cgroup/freezer")
	}
	return filepath.Join(h.dir(g.rel), "freezer.state"), nil
}

// setFreezer writes state (FROZEN or THAWED) until freezer.state reads
// it back, for at most timeout. containerd's freezer waits forever, which
// a daemon cannot afford when a task is stuck in uninterruptible sleep.
func (g *v1Group) setFreezer(state string, timeout time.Duration) error {
	file, err := g.freezerFile()
	if err != nil {
		return err
	}
	err = waitFor(timeout, func() (bool, error) {
		if err := os.WriteFile(file, []byte(state), 0); err != nil {
			return false, err
		}
		cur, err := os.ReadFile(file)
		if err != nil {
			return false, err
		}
		return strings.TrimSpace(string(cur)) == state, nil
	})
	if errors.Is(err, errTimeout) {
		return errdefs.New(errdefs.Unavailable, "cgroup %s: freezer.state not %s after %s", g.name, state, timeout)
	}
	if err != nil {
		return notFound(err, "set freezer.state of cgroup "+g.name)
	}
	return nil
}

func (g *v1Group) Freeze() error {
	if err := g.setFreezer("FROZEN", freezeTimeout); err != nil {
		if errdefs.IsUnavailable(err) {
			_ = g.setFreezer("THAWED", freezeTimeout)
		}
		return fmt.Errorf("freeze: %w", err)
	}
	return nil
}

func (g *v1Group) Thaw() error {
	if err := g.setFreezer("THAWED", freezeTimeout); err != nil {
		return fmt.Errorf("thaw: %w", err)
	}
	return nil
}

func (g *v1Group) Frozen() (bool, error) {
	file, err := g.freezerFile()
	if err != nil {
		return false, err
	}
	cur, err := os.ReadFile(file)
	if err != nil {
		return false, notFound(err, "read freezer.state of cgroup "+g.name)
	}
	return strings.TrimSpace(string(cur)) == "FROZEN", nil
}

func (g *v1Group) Stats() (Stats, error) {
	mt, err := g.cg.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return Stats{}, notFound(err, "read stats of cgroup "+g.name)
	}
	if !exists(g.Path()) {
		return Stats{}, errdefs.New(errdefs.NotFound, "read stats of cgroup %s: cgroup does not exist", g.name)
	}
	var s Stats
	if mt.CPU != nil && mt.CPU.Usage != nil {
		s.CPUUsageNS = mt.CPU.Usage.Total
	}
	if mt.Memory != nil && mt.Memory.Usage != nil {
		s.MemoryUsage = mt.Memory.Usage.Usage
		s.MemoryMax = normLimit(mt.Memory.Usage.Limit)
		s.MemoryPeak = mt.Memory.Usage.Max
	}
	if mt.MemoryOomControl != nil {
		s.OOMKills = mt.MemoryOomControl.OomKill
	}
	if mt.Pids != nil {
		s.Pids = mt.Pids.Current
	} else if tasks, err := g.cg.Tasks(cgroup1.Memory, true); err == nil {
		s.Pids = uint64(len(tasks)) // no pids controller: count the tasks
	}
	return s, nil
}

func (g *v1Group) OOMKills() (uint64, error) {
	// containerd reads oom_kill only as part of a full Stat; this one
	// file is all the supervisor needs after an exit.
	h := g.m.hiers[0]
	data, err := os.ReadFile(filepath.Join(h.dir(g.rel), "memory.oom_control"))
	if err != nil {
		return 0, notFound(err, "read memory.oom_control of cgroup "+g.name)
	}
	n, ok := parseFlatKeyed(string(data), "oom_kill")
	if !ok {
		return 0, errdefs.New(errdefs.Unsupported, "cgroup %s: memory.oom_control has no oom_kill counter (needs Linux 4.13)", g.name)
	}
	return n, nil
}

func (g *v1Group) MemoryStat() (MemoryStat, error) {
	h := g.m.hiers[0] // memory
	dir := h.dir(g.rel)
	st, err := readFlat(filepath.Join(dir, "memory.stat"), "total_rss", "total_cache", "total_shmem")
	if err != nil {
		return MemoryStat{}, notFound(err, "read memory.stat of cgroup "+g.name)
	}
	return MemoryStat{
		Usage: readUint(filepath.Join(dir, "memory.usage_in_bytes")), Peak: readUint(filepath.Join(dir, "memory.max_usage_in_bytes")),
		Anon: st["total_rss"], File: st["total_cache"], Shmem: st["total_shmem"],
		Kernel: readUint(filepath.Join(dir, "memory.kmem.usage_in_bytes")),
		Sock:   readUint(filepath.Join(dir, "memory.kmem.tcp.usage_in_bytes")),
	}, nil
}

func (g *v1Group) killer() killer {
	var in []hierPath
	for _, h := range g.m.hiers {
		in = append(in, hierPath{h.name, path.Join(h.root, g.rel)})
	}
	k := killer{name: g.name, procs: g.Procs, member: procMember(in)}
	if _, ok := g.m.hierOf("freezer"); ok {
		k.freeze = func() error { return g.setFreezer("FROZEN", killFreezeMax) }
		k.thaw = func() error { return g.setFreezer("THAWED", freezeTimeout) }
	}
	return k
}

func (g *v1Group) Kill() error {
	if !g.exists() {
		return errdefs.New(errdefs.NotFound, "kill cgroup %s: cgroup does not exist", g.name)
	}
	return killAll(g.killer())
}

func (g *v1Group) Delete() error {
	if !g.exists() {
		return nil
	}
	if err := killAll(g.killer()); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete: %w", err)
	}
	g.m.mu.Lock()
	defer g.m.mu.Unlock()
	if err := g.m.removeLocked(g.rel); err != nil {
		return fmt.Errorf("delete cgroup %s: %w", g.name, err)
	}
	g.m.log.Debug("cgroup deleted", logkey.Cgroup, g.name, "version", 1)
	return nil
}
