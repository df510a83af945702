package daemon

import (
	"fmt"
	"os"
	"strings"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/cgroups"
	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/egress"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/sandbox"
	"github.com/cortexrt/cortex/internal/supervisor"
	"golang.org/x/net/bpf"
)

// Walls is what the host can enforce, found once at start.
type Walls struct {
	List []api.Wall
	// Missing are required walls the host lacks ("seccomp: ..."); with
	// Degraded the daemon runs agents without them, else it refuses.
	Missing  []string
	Degraded bool
	Landlock int
	Seccomp  bool
	// SeccompPrograms are the agent filters, compiled once.
	SeccompPrograms [][]bpf.RawInstruction
	Cgroup          cgroups.HostInfo
}

func probeWalls(cfg *config.Config) Walls {
	w := Walls{Degraded: cfg.Sandbox.Degraded, Cgroup: cgroups.Probe()}
	add := func(name string, err error, required bool, detail string) bool {
		up := err == nil
		if !up {
			detail = err.Error()
			if required {
				w.Missing = append(w.Missing, name+": "+detail)
			}
		}
		w.List = append(w.List, api.Wall{Name: name, Up: up, Detail: detail})
		return up
	}
	add("cgroup", w.Cgroup.Err(), true, w.Cgroup.Mode)
	add("namespaces", probeNamespaces(), true, "pid, mount, uts, ipc, net, cgroup")
	progs, err := compileSeccomp()
	n := 0
	for _, p := range progs {
		n += len(p)
	}
	w.Seccomp = add("seccomp", err, true, fmt.Sprintf("deny-list filter + set-id filter (%d BPF instructions), EPERM, x32/i386 refused", n))
	w.SeccompPrograms = progs
	add("egress", egress.Probe(), true, "netns with loopback only; DNS allowlist, transparent TCP gateway, HTTP proxy (nftables over netlink)")
	w.Landlock = sandbox.LandlockABI()
	var llErr error
	if w.Landlock == 0 {
		llErr = fmt.Errorf("the kernel has no Landlock (a second wall; the mount tree still confines files)")
	}
	add("landlock", llErr, false, fmt.Sprintf("ABI %d", w.Landlock))
	return w
}

func probeNamespaces() error {
	for _, ns := range []string{"pid", "mnt", "uts", "ipc", "net", "cgroup"} {
		if _, err := os.Stat("/proc/self/ns/" + ns); err != nil {
			return fmt.Errorf("no %s namespace: %w", ns, err)
		}
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("cortexd must run as root to create namespaces (rootless mode is not built yet)")
	}
	return nil
}

func (w Walls) sandboxOptions(tmpSize int64) supervisor.SandboxOptions {
	details := map[string]string{}
	for _, x := range w.List {
		details[x.Name] = x.Detail
	}
	return supervisor.SandboxOptions{
		Confine:         true,
		Seccomp:         w.Seccomp,
		SeccompPrograms: w.SeccompPrograms,
		Landlock:        w.Landlock > 0,
		TmpSize:         tmpSize,
		Missing:         w.Missing,
		WallDetails:     details,
	}
}

// refuseMissing is the secure default: without a required wall, runs are
// refused unless the config opts into degraded mode.
func (w Walls) refuseMissing() error {
	if len(w.Missing) == 0 || w.Degraded {
		return nil
	}
	return errdefs.WithHint(errdefs.New(errdefs.FailedPrecondition, "this host lacks a wall Cortex requires: %s", strings.Join(w.Missing, "; ")),
		"use a kernel with the feature, or set sandbox.degraded: true in /etc/cortex/config.yaml to run agents with weaker isolation (cortex list and inspect will say so)")
}
