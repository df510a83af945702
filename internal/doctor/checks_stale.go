package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/cgroups"
	"github.com/cortexrt/cortex/internal/txn"
)

func noState(what string) Result {
	return Skip("cannot tell %s from stale ones: the daemon's state is unavailable", what)
}

// activeSet is the active agents as "project/agent".
func activeSet(ctx context.Context, s State) (map[string]bool, error) {
	agents, err := s.Agents(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, a := range agents {
		if a.Active {
			out[a.Project+"/"+a.Agent] = true
		}
	}
	return out, nil
}

// staleGroup is a cgroup directory no agent owns.
type staleGroup struct {
	rel   string   // under the parent
	dirs  []string // in each hierarchy, existing
	procs []string // processes found in it (then it is not removed)
}

// scanCgroups finds group directories under the daemon's parent that no
// active agent owns. Directories are listed deepest first.
func (h *Host) scanCgroups(ctx context.Context) ([]staleGroup, int, error) {
	active, err := activeSet(ctx, h.State)
	if err != nil {
		return nil, 0, err
	}
	byRel := map[string]*staleGroup{}
	live := 0
	for _, parent := range cgroups.ParentDirs(h.CgroupParent) {
		_ = filepath.WalkDir(parent, func(p string, e fs.DirEntry, err error) error {
			if err != nil || !e.IsDir() || p == parent {
				return nil
			}
			rel, _ := filepath.Rel(parent, p)
			if active[rel] {
				live++
				return filepath.SkipDir
			}
			// An intermediate directory (a project) holding an active agent
			// is not stale.
			for a := range active {
				if strings.HasPrefix(a, rel+"/") {
					return nil
				}
			}
			g, ok := byRel[rel]
			if !ok {
				g = &staleGroup{rel: rel}
				byRel[rel] = g
			}
			g.dirs = append(g.dirs, p)
			if data, err := os.ReadFile(filepath.Join(p, "cgroup.procs")); err == nil {
				for _, pid := range strings.Fields(string(data)) {
					g.procs = append(g.procs, pid)
				}
			}
			return nil
		})
	}
	var out []staleGroup
	for _, g := range byRel {
		out = append(out, *g)
	}
	// Deepest first, so each directory is empty of children when removed.
	sort.Slice(out, func(i, j int) bool {
		di, dj := strings.Count(out[i].rel, "/"), strings.Count(out[j].rel, "/")
		if di != dj {
			return di > dj
		}
		return out[i].rel < out[j].rel
	})
	return out, live, nil
}

func (h *Host) checkStaleCgroups() Check {
	return &Func{Meta: Info{ID: "stale.cgroups", Title: "no cgroup left by a crashed run", DependsOn: []string{"sqlite.integrity"}},
		RunFunc: func(ctx context.Context) Result {
			if h.State == nil {
				return noState("live cgroups")
			}
			groups, live, err := h.scanCgroups(ctx)
			if err != nil {
				return Fail(nil, "list agents: %v", err)
			}
			if len(groups) == 0 {
				return OK("%d agent group(s) under %s, each an active agent's", live, h.CgroupParent)
			}
			var empty, busy []string
			for _, g := range groups {
				if len(g.procs) > 0 {
					busy = append(busy, fmt.Sprintf("%s holds pids %s", g.rel, strings.Join(g.procs, " ")))
				} else {
					empty = append(empty, g.rel+" ("+strings.Join(g.dirs, ", ")+")")
				}
			}
			if len(busy) > 0 {
				return Fail(Manual("processes run in groups no agent owns (an escaped or orphaned sandbox): inspect them, kill them (kill -9 PID), then run cortex-ops repair", ""),
					"%s", list(append(busy, empty...), 6))
			}
			return Result{Status: api.CheckWarn, Evidence: "empty groups no agent owns: " + list(empty, 6),
				Fix: Auto("remove the empty cgroup directories")}
		},
		FixFunc: func(ctx context.Context, r Result, tx *txn.Txn) error {
			release := h.State.Hold()
			defer release()
			groups, _, err := h.scanCgroups(ctx) // as they are now
			if err != nil {
				return err
			}
			var busy []string
			for _, g := range groups {
				if len(g.procs) > 0 {
					busy = append(busy, g.rel)
				}
			}
		next:
			for _, g := range groups {
				for _, b := range busy {
					if b == g.rel || strings.HasPrefix(b, g.rel+"/") {
						continue next
					}
				}
				for _, d := range g.dirs {
					if err := tx.Remove(d); err != nil {
						return err
					}
				}
			}
			return nil
		}}
}

// mountRoots are the places the daemon never mounts anything on the host
// (sandboxes mount in their own namespaces).
func (h *Host) mountRoots() []string {
	return []string{
		filepath.Join(h.Paths.RunDir, "agents"),
		filepath.Join(h.Paths.LibDir, "bundles"),
		filepath.Join(h.Paths.LibDir, "projects"),
		filepath.Join(h.Paths.LibDir, "tmp"),
	}
}

func (h *Host) checkStaleMounts() Check {
	return &Func{Meta: Info{ID: "stale.mounts", Title: "no mount left on the host by a crashed run"},
		RunFunc: func(ctx context.Context) Result {
			data, err := os.ReadFile("/proc/self/mountinfo")
			if err != nil {
				return Fail(nil, "read mountinfo: %v", err)
			}
			var found []string
			for _, l := range strings.Split(string(data), "\n") {
				f := strings.Fields(l)
				if len(f) < 5 {
					continue
				}
				mp := unescapeMount(f[4])
				for _, root := range h.mountRoots() {
					if strings.HasPrefix(mp, root+"/") {
						found = append(found, mp)
					}
				}
			}
			if len(found) > 0 {
				cmd := "umount -l " + strings.Join(found, " ")
				return Fail(Manual("unmount them (no agent's sandbox uses a host mount; check no agent is starting)", cmd), "mounts on the host under the daemon's state: %s", list(found, 6))
			}
			return OK("no host mount under %s", strings.Join(h.mountRoots(), ", "))
		}}
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// scanSockets finds sockets under the run dir no one listens on, outside
// the directories of active agents.
func (h *Host) scanSockets(ctx context.Context) ([]string, int, error) {
	active := map[string]bool{}
	if h.State != nil {
		var err error
		if active, err = activeSet(ctx, h.State); err != nil {
			return nil, 0, err
		}
	}
	agentsDir := filepath.Join(h.Paths.RunDir, "agents")
	var stale []string
	n := 0
	err := filepath.WalkDir(h.Paths.RunDir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if e.IsDir() {
			if rel, err := filepath.Rel(agentsDir, p); err == nil && active[rel] {
				return filepath.SkipDir
			}
			return nil
		}
		if e.Type()&fs.ModeSocket == 0 {
			return nil
		}
		n++
		c, err := net.DialTimeout("unix", p, 300*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			stale = append(stale, p)
		}
		return nil
	})
	return stale, n, err
}

func (h *Host) checkStaleSockets() Check {
	return &Func{Meta: Info{ID: "stale.sockets", Title: "no socket left by a crashed run", DependsOn: []string{"sqlite.integrity"}},
		RunFunc: func(ctx context.Context) Result {
			if h.State == nil {
				return noState("live sockets")
			}
			stale, n, err := h.scanSockets(ctx)
			if err != nil {
				return Fail(nil, "walk %s: %v", h.Paths.RunDir, err)
			}
			if len(stale) == 0 {
				return OK("%d socket(s) under %s outside active agents' directories, each answering", n, h.Paths.RunDir)
			}
			return Result{Status: api.CheckWarn, Evidence: "no one listens on: " + list(stale, 6), Fix: Auto("remove the sockets no one listens on")}
		},
		FixFunc: func(ctx context.Context, r Result, tx *txn.Txn) error {
			release := h.State.Hold()
			defer release()
			stale, _, err := h.scanSockets(ctx)
			if err != nil {
				return err
			}
			for _, s := range stale {
				if err := tx.Remove(s); err != nil {
					return err
				}
			}
			return nil
		}}
}

// scanBundles lists bundle directories no project uses.
func (h *Host) scanBundles(ctx context.Context) ([]string, int, error) {
	used, err := h.State.BundleDirs(ctx)
	if err != nil {
		return nil, 0, err
	}
	set := map[string]bool{}
	for _, u := range used {
		set[filepath.Clean(u)] = true
	}
	dir := filepath.Join(h.Paths.LibDir, "bundles")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var orphans []string
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if !set[p] {
			orphans = append(orphans, p)
		}
	}
	return orphans, len(ents), nil
}

func (h *Host) checkOrphanBundles() Check {
	return &Func{Meta: Info{ID: "bundles.orphaned", Title: "no unpacked bundle that no project uses", DependsOn: []string{"sqlite.integrity"}},
		RunFunc: func(ctx context.Context) Result {
			if h.State == nil {
				return noState("bundles in use")
			}
			orphans, n, err := h.scanBundles(ctx)
			if err != nil {
				return Fail(nil, "%v", err)
			}
			if len(orphans) == 0 {
				return OK("%d unpacked bundle(s), each used by a project", n)
			}
			return Result{Status: api.CheckWarn, Evidence: "no project uses: " + list(orphans, 6),
				Fix: Auto("move the unused bundle directories aside into the repair's transaction (undo brings them back; delete the transaction's directory to free the space)")}
		},
		FixFunc: func(ctx context.Context, r Result, tx *txn.Txn) error {
			release := h.State.Hold()
			defer release()
			orphans, _, err := h.scanBundles(ctx)
			if err != nil {
				return err
			}
			for _, o := range orphans {
				if err := tx.MoveAside(o); err != nil {
					return err
				}
			}
			return nil
		}}
}
