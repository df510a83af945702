package cgroups

import (
	"math"
	"strings"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// Limits are the ceilings of one group. A zero field means "no ceiling".
type Limits struct {
	// CPU is the CPU quota in cores (0.5 = half a core over every 100 ms
	// period). The smallest quota is 0.01 cores.
	CPU float64
	// Memory is the RAM ceiling in bytes. Swap is never available to a
	// limited group: v1 sets memory.memsw.limit_in_bytes to the same value
	// (memory.swappiness=0 where memsw does not exist), v2 sets
	// memory.swap.max=0.
	Memory int64
	// Pids caps the tasks (processes and threads) alive in the group at
	// once; a fork beyond it fails with EAGAIN.
	Pids int64
}

// cpuPeriodUS is the CFS period both drivers use; the quota is CPU*period.
const cpuPeriodUS = 100000

// minCPUQuotaUS is the kernel's smallest CFS quota (1 ms).
const minCPUQuotaUS = 1000

// maxCPU bounds the CPU field to something a host can have.
const maxCPU = 4096

// Validate reports an InvalidArgument error naming every bad field.
func (l Limits) Validate() error {
	var bad []string
	switch {
	case math.IsNaN(l.CPU) || math.IsInf(l.CPU, 0) || l.CPU < 0:
		bad = append(bad, "cpu must be a non-negative number of cores")
	case l.CPU > maxCPU:
		bad = append(bad, "cpu must be at most 4096 cores")
	case l.CPU > 0 && l.quotaUS() < minCPUQuotaUS:
		bad = append(bad, "cpu must be at least 0.01 cores (or 0 for no quota)")
	}
	if l.Memory < 0 {
		bad = append(bad, "memory must not be negative")
	}
	if l.Pids < 0 {
		bad = append(bad, "pids must not be negative")
	}
	if len(bad) > 0 {
		return errdefs.New(errdefs.InvalidArgument, "cgroup limits: %s", strings.Join(bad, "; "))
	}
	return nil
}

// quotaUS is the CFS quota in microseconds per cpuPeriodUS.
func (l Limits) quotaUS() int64 { return int64(math.Round(l.CPU * cpuPeriodUS)) }

// Stats is a snapshot of a group's usage.
type Stats struct {
	CPUUsageNS  uint64 // CPU time used by every task of the group, ever, in ns
	MemoryUsage uint64 // bytes charged now
	MemoryMax   uint64 // the memory ceiling in bytes; 0 = none
	MemoryPeak  uint64 // highest MemoryUsage seen; 0 where the kernel does not track it
	Pids        uint64 // tasks (processes and threads) alive now
	OOMKills    uint64 // tasks the kernel OOM-killed because of the group's ceiling
}

// MemoryStat is what a group's memory is made of (memory.stat), in bytes.
// v2 charges all of it to memory.max; v1 charges Anon, File (with Shmem)
// and Kernel to memory.limit_in_bytes and Sock (TCP buffers) to a counter
// of its own, memory.kmem.tcp, capped at the same value by Create.
type MemoryStat struct {
	Usage  uint64 `json:"usage"`  // charged now
	Peak   uint64 `json:"peak"`   // highest usage seen; 0 where the kernel does not track it
	Anon   uint64 `json:"anon"`   // anonymous memory (heaps, stacks)
	File   uint64 `json:"file"`   // page cache, tmpfs included
	Shmem  uint64 `json:"shmem"`  // tmpfs and shared memory (part of File)
	Kernel uint64 `json:"kernel"` // kernel memory: slab, stacks, page tables
	Sock   uint64 `json:"sock"`   // socket buffers (v1: TCP only)
}

// Manager creates and finds the cgroups of one daemon under a parent named
// by the caller ("cortex", or "cortex-<hash>" so several daemons with
// different CORTEX_ROOTs can run side by side). A Manager only ever sees
// and touches groups below its own parent. It is safe for concurrent use.
//
// Group names are relative to the parent, slash-separated, like
// "project/agent". Each component is 1-128 characters of [A-Za-z0-9_.-],
// starting with a letter or digit, and must not look like a cgroup
// interface file ("memory.max", "tasks"). A group is a leaf: do not create
// a group whose name is a prefix of another's.
type Manager interface {
	// Version is 1 or 2: the cgroup version this Manager drives.
	Version() int
	// Create makes the group (and any missing intermediate directories)
	// in every hierarchy and applies l before returning, so a process
	// added next runs under the ceilings. It fails with AlreadyExists if
	// the group exists, InvalidArgument for a bad name or limits, and
	// FailedPrecondition if l needs a controller the host lacks. On
	// failure nothing it created is left behind.
	Create(name string, l Limits) (Group, error)
	// Load returns an existing group; NotFound if it exists in no
	// hierarchy. A group left half-created or half-deleted by a crash
	// loads as long as any of its directories remains, so it can be
	// deleted.
	Load(name string) (Group, error)
	// List returns the names of the existing groups (leaf directories)
	// under the parent, sorted, for orphan cleanup after a daemon crash.
	// An absent parent is an empty list.
	List() ([]string, error)
	// RemoveParent removes the Manager's parent directory from every
	// hierarchy when no group (no directory at all) is left under it, so
	// a stopped daemon leaves no empty "cortex-<hash>" behind. It fails
	// with FailedPrecondition, removing nothing, while any group remains:
	// agents that outlive a daemon stop keep their groups for the next
	// daemon. An absent parent is removed already.
	RemoveParent() error
}

// Group is one cgroup. Its methods fail with NotFound once the group is
// gone (except Delete, which is idempotent).
type Group interface {
	// Name is the name given to Create or Load.
	Name() string
	// Path is the group's main directory: the v2 directory, or the
	// memory hierarchy's directory in v1 (for `cortex inspect`).
	Path() string
	// AddProc moves process pid (all its threads) into the group in every
	// hierarchy. NotFound if the process does not exist.
	AddProc(pid int) error
	// Procs lists the processes in the group and any sub-groups, sorted.
	Procs() ([]int, error)
	// Freeze stops every task in the group and returns once the kernel
	// reports the group frozen. If that does not happen within a few
	// seconds it thaws the group again and fails with Unavailable.
	Freeze() error
	// Thaw resumes a frozen group and returns once it is thawed.
	Thaw() error
	// Frozen reports whether the group is (completely) frozen.
	Frozen() (bool, error)
	// Stats reads the group's usage.
	Stats() (Stats, error)
	// OOMKills is the number of tasks the kernel OOM-killed because the
	// group hit its memory ceiling (v1 memory.oom_control, v2
	// memory.events "oom_kill"). The supervisor reads it after the main
	// process died of SIGKILL to tell an OOM kill from any other.
	OOMKills() (uint64, error)
	// MemoryStat reads what the group's memory is made of now (after an
	// OOM kill: what is still charged, with Peak the high-water mark).
	MemoryStat() (MemoryStat, error)
	// Kill sends SIGKILL to every process in the group and returns once
	// the group is empty (Unavailable if it is not within a few seconds).
	// v2 uses cgroup.kill where the kernel has it; otherwise the group is
	// frozen, every member signalled, thawed, and the loop repeats until
	// no process is left, so a forking process cannot escape.
	Kill() error
	// Delete kills any process left in the group, then removes it from
	// every hierarchy, retrying briefly while the kernel still reports
	// it busy, and removes intermediate directories left empty (never
	// the Manager's parent). Deleting a deleted group succeeds.
	Delete() error
}

// HostInfo is what Probe found about the host's cgroups.
type HostInfo struct {
	// Mode is "v1" (legacy: v1 hierarchies only), "v2" (unified),
	// "hybrid" (v1 hierarchies plus a cgroup2 mount; Cortex uses v1) or
	// "none".
	Mode string `json:"mode"`
	// Version is the driver New picks: 1, 2, or 0 if none is usable.
	Version int `json:"version"`
	// V2Mount is where cgroup2 is mounted ("" if it is not).
	V2Mount string `json:"v2_mount,omitempty"`
	// V2Controllers are the controllers the cgroup2 root offers.
	V2Controllers []string `json:"v2_controllers,omitempty"`
	// Controllers are the controllers and features the chosen driver
	// uses, each with whether it is usable and, if not, why.
	Controllers []Controller `json:"controllers"`
	// Swap says how the driver keeps limited groups off swap.
	Swap string `json:"swap"`
	// Notes are facts worth showing a user (fallbacks, ignored mounts).
	Notes []string `json:"notes,omitempty"`
}

// Controller is one controller or feature as seen by Probe.
type Controller struct {
	Name   string `json:"name"`
	Usable bool   `json:"usable"`
	Path   string `json:"path,omitempty"`   // mount point (v1) or cgroup2 mount (v2)
	Reason string `json:"reason,omitempty"` // why it is not usable
}

// Err returns nil if the chosen driver can enforce every ceiling and do
// every operation (memory, cpu, pids, freezing, usage); otherwise a
// FailedPrecondition error listing what is missing and why.
func (h HostInfo) Err() error {
	var missing []string
	for _, c := range h.Controllers {
		if !c.Usable {
			missing = append(missing, c.Name+": "+c.Reason)
		}
	}
	switch {
	case h.Version == 0 && len(missing) > 0:
		return errdefs.New(errdefs.FailedPrecondition, "no usable cgroups (mode %s): %s", h.Mode, strings.Join(missing, "; "))
	case h.Version == 0:
		return errdefs.New(errdefs.FailedPrecondition, "no usable cgroups (mode %s)", h.Mode)
	case len(missing) > 0:
		return errdefs.New(errdefs.FailedPrecondition, "cgroup v%d lacks %s", h.Version, strings.Join(missing, "; "))
	}
	return nil
}

// Controller looks a controller up by name.
func (h HostInfo) Controller(name string) (Controller, bool) {
	for _, c := range h.Controllers {
		if c.Name == name {
			return c, true
		}
	}
	return Controller{}, false
}

// reservedPrefixes are the "<controller>." prefixes of cgroup interface
// files; a directory named like one would collide with a file.
var reservedPrefixes = []string{
	"cgroup", "memory", "cpu", "cpuacct", "cpuset", "pids", "freezer",
	"io", "blkio", "hugetlb", "rdma", "misc", "devices", "net_cls", "net_prio",
	"perf_event",
}

var reservedNames = []string{"tasks", "notify_on_release", "release_agent"}

// validName checks a parent or group name (see Manager for the rules).
func validName(what, name string) error {
	if name == "" {
		return errdefs.New(errdefs.InvalidArgument, "cgroup %s name is empty", what)
	}
	for _, c := range strings.Split(name, "/") {
		if err := validComponent(c); err != nil {
			return errdefs.New(errdefs.InvalidArgument, "cgroup %s name %q: %v", what, name, err)
		}
	}
	return nil
}

type nameError string

func (e nameError) Error() string { return string(e) }

func validComponent(c string) error {
	if c == "" {
		return nameError("empty path component")
	}
	if len(c) > 128 {
		return nameError("component longer than 128 characters")
	}
	for i := 0; i < len(c); i++ {
		b := c[i]
		alnum := b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
		if i == 0 && !alnum {
			return nameError("component " + quote(c) + " must start with a letter or digit")
		}
		if !alnum && b != '_' && b != '.' && b != '-' {
			return nameError("component " + quote(c) + " may only hold letters, digits, '_', '.' and '-'")
		}
	}
	for _, r := range reservedNames {
		if c == r {
			return nameError("component " + quote(c) + " is a cgroup interface file name")
		}
	}
	if i := strings.IndexByte(c, '.'); i > 0 {
		for _, p := range reservedPrefixes {
			if c[:i] == p {
				return nameError("component " + quote(c) + " looks like a cgroup interface file")
			}
		}
	}
	return nil
}

func quote(s string) string { return `"` + s + `"` }
