package cgroups

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	ccgroups "github.com/containerd/cgroups/v3"
	"golang.org/x/sys/unix"
)

// v1Wanted are the v1 controllers the v1 driver puts every group in, in
// the order processes are added. memory is the primary hierarchy (Path,
// the AlreadyExists claim).
var v1Wanted = []string{"memory", "cpu", "cpuacct", "pids", "freezer"}

// v2Wanted are the v2 controllers the v2 driver enables.
var v2Wanted = []string{"memory", "cpu", "pids"}

// layout is the host's cgroup mounts.
type layout struct {
	mode    string            // "v1", "v2", "hybrid", "none"
	v1Point map[string]string // controller -> mount point (first mount wins)
	v1Root  map[string]string // controller -> root of that mount in its hierarchy
	v2Mount string            // cgroup2 mount point, "" if none
	v2Root  string            // root of that mount in the hierarchy
}

// detect reads /proc/self/mountinfo and the host mode.
func detect() (layout, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return layout{}, fmt.Errorf("detect cgroup mounts: %w", err)
	}
	defer f.Close()
	mounts, err := parseMountinfo(f)
	if err != nil {
		return layout{}, fmt.Errorf("detect cgroup mounts: %w", err)
	}
	l := layoutFromMounts(mounts)
	switch ccgroups.Mode() {
	case ccgroups.Unified:
		l.mode = "v2"
	case ccgroups.Hybrid:
		l.mode = "hybrid"
	case ccgroups.Legacy:
		l.mode = "v1"
	default:
		l.mode = "none"
	}
	// containerd decides the mode from /sys/fs/cgroup alone; a host with
	// cgroups mounted elsewhere is still usable.
	if l.mode == "none" || (l.mode == "v1" && len(l.v1Point) == 0) {
		switch {
		case len(l.v1Point) > 0 && l.v2Mount != "":
			l.mode = "hybrid"
		case len(l.v1Point) > 0:
			l.mode = "v1"
		case l.v2Mount != "":
			l.mode = "v2"
		default:
			l.mode = "none"
		}
	}
	return l, nil
}

func layoutFromMounts(mounts []mount) layout {
	l := layout{v1Point: map[string]string{}, v1Root: map[string]string{}}
	for _, m := range mounts {
		switch m.Version {
		case 1:
			for _, c := range m.Controllers {
				if _, seen := l.v1Point[c]; !seen {
					l.v1Point[c] = m.Point
					l.v1Root[c] = m.Root
				}
			}
		case 2:
			// Prefer the canonical places over any later bind mount.
			if l.v2Mount == "" || m.Point == "/sys/fs/cgroup" ||
				(m.Point == "/sys/fs/cgroup/unified" && l.v2Mount != "/sys/fs/cgroup") {
				l.v2Mount, l.v2Root = m.Point, m.Root
			}
		}
	}
	return l
}

// containerdRoot returns the directory containerd's cgroup1 constructors
// need (they join it with the controller name) for controller name
// mounted at point, or why there is none.
func containerdRoot(name, point string) (string, error) {
	dir := filepath.Dir(point)
	want := filepath.Join(dir, name)
	if want == point {
		return dir, nil
	}
	// Co-mounted hierarchies ("cpu,cpuacct") come with a "cpu" symlink.
	if real, err := filepath.EvalSymlinks(want); err == nil && real == point {
		return dir, nil
	}
	return "", fmt.Errorf("mounted at %s, but the driver needs it at %s (a mount or symlink)", point, want)
}

// writable reports why dir cannot be written, or nil.
func writable(dir string) error {
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return fmt.Errorf("%s is not writable: %w (cortexd must run as root)", dir, err)
	}
	return nil
}

// Probe reports what the host's cgroups support. It has no side effects.
func Probe() HostInfo {
	l, err := detect()
	if err != nil {
		return HostInfo{Mode: "none", Notes: []string{err.Error()}}
	}
	h := HostInfo{Mode: l.mode, V2Mount: l.v2Mount}
	if l.v2Mount != "" {
		h.V2Controllers = readControllers(l.v2Mount)
	}
	switch l.mode {
	case "v1", "hybrid":
		h.Version = 1
		h.Controllers, h.Swap = probeV1(l)
		if l.mode == "hybrid" {
			h.Notes = append(h.Notes, fmt.Sprintf("hybrid host: cgroup2 at %s offers controllers %v; the v1 driver is used", l.v2Mount, h.V2Controllers))
		}
	case "v2":
		h.Version = 2
		h.Controllers, h.Swap, h.Notes = probeV2(l.v2Mount)
	}
	if c, _ := h.Controller("memory"); h.Version != 0 && !c.Usable {
		h.Version = 0 // New refuses to run agents without a memory ceiling
	}
	if h.Swap != "" && strings.Contains(h.Swap, "not capped") {
		h.Notes = append(h.Notes, "swap: "+h.Swap)
	}
	return h
}

func probeV1(l layout) ([]Controller, string) {
	var out []Controller
	for _, name := range v1Wanted {
		c := Controller{Name: name}
		point, ok := l.v1Point[name]
		switch {
		case !ok:
			c.Reason = "not mounted: no cgroup v1 hierarchy with this controller in /proc/self/mountinfo"
		default:
			c.Path = point
			if _, err := containerdRoot(name, point); err != nil {
				c.Reason = err.Error()
			} else if err := writable(point); err != nil {
				c.Reason = err.Error()
			} else {
				c.Usable = true
			}
		}
		out = append(out, c)
	}
	swap := "unavailable: no memory controller"
	if p, ok := l.v1Point["memory"]; ok {
		if _, err := os.Stat(filepath.Join(p, "memory.memsw.limit_in_bytes")); err == nil {
			swap = "memory.memsw.limit_in_bytes = memory.limit_in_bytes"
		} else {
			swap = "memory.swappiness=0; swap usage not capped (no memory.memsw.*: boot with swapaccount=1)"
		}
	}
	return out, swap
}

func probeV2(mountPoint string) (_ []Controller, swap string, notes []string) {
	avail := readControllers(mountPoint)
	var out []Controller
	for _, name := range v2Wanted {
		c := Controller{Name: name, Path: mountPoint}
		switch {
		case !slices.Contains(avail, name):
			c.Reason = fmt.Sprintf("not in %s/cgroup.controllers (delegate it to this cgroup2 mount)", mountPoint)
		default:
			if err := writable(mountPoint); err != nil {
				c.Reason = err.Error()
			} else {
				c.Usable = true
			}
		}
		out = append(out, c)
	}
	for _, feat := range []struct{ name, file, kernel string }{
		{"freeze", "cgroup.freeze", "5.2"},
		{"kill", "cgroup.kill", "5.14"},
	} {
		c := Controller{Name: feat.name, Path: mountPoint}
		if has, known := v2HasFile(mountPoint, feat.file); has {
			c.Usable = true
		} else if known {
			c.Reason = fmt.Sprintf("no %s in child cgroups (needs Linux %s)", feat.file, feat.kernel)
		} else {
			c.Reason = fmt.Sprintf("no child cgroup to look for %s in", feat.file)
		}
		if feat.name == "kill" && !c.Usable {
			// Kill falls back to freeze, signal, thaw: slower, not missing.
			notes = append(notes, "cgroup.kill absent: Kill freezes the group and signals each process")
			continue
		}
		out = append(out, c)
	}
	swap = "unavailable: no memory controller"
	if slices.Contains(avail, "memory") {
		if has, known := v2HasFile(mountPoint, "memory.swap.max"); has || !known {
			swap = "memory.swap.max = 0"
		} else {
			swap = "swap usage not capped (no memory.swap.max: boot with swapaccount=1)"
		}
	}
	return out, swap, notes
}

// v2HasFile reports whether non-root cgroups under mountPoint have file,
// by looking in the first child directory that has the controllers; known
// is false when there is no child to look in.
func v2HasFile(mountPoint, file string) (has, known bool) {
	entries, err := os.ReadDir(mountPoint)
	if err != nil {
		return false, false
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(mountPoint, e.Name())
		if strings.HasPrefix(file, "memory.") {
			if _, err := os.Stat(filepath.Join(dir, "memory.max")); err != nil {
				continue // memory not enabled here; says nothing about file
			}
		}
		_, err := os.Stat(filepath.Join(dir, file))
		return err == nil, true
	}
	return false, false
}

// readControllers returns the controllers listed in dir/cgroup.controllers.
func readControllers(dir string) []string {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return nil
	}
	return strings.Fields(string(data))
}

// ParentDirs returns the directory of the cgroup parent named parent in
// each hierarchy the driver New picks would use (v1: every wanted
// controller's mount, co-mounted ones once; v2: the cgroup2 mount),
// whether it exists or not. Doctor reads it to find groups no agent owns.
func ParentDirs(parent string) []string {
	l, err := detect()
	if err != nil {
		return nil
	}
	var out []string
	switch l.mode {
	case "v1", "hybrid":
		for _, name := range v1Wanted {
			if p, ok := l.v1Point[name]; ok && !slices.Contains(out, filepath.Join(p, parent)) {
				out = append(out, filepath.Join(p, parent))
			}
		}
	case "v2":
		out = append(out, filepath.Join(l.v2Mount, parent))
	}
	return out
}
