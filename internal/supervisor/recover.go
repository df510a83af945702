package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cortexrt/cortex/internal/logkey"
	"github.com/cortexrt/cortex/internal/logs"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/sandbox"
	"github.com/cortexrt/cortex/internal/store"
)

// Recover accounts for every agent the store knows, after a daemon start:
// agents still alive are reattached (their output FIFOs reopened, their
// cgroup kept); agents that ended while the daemon was down are marked
// with what happened (their exit status file, or an OOM kill seen in
// their cgroup) and handed to the restart policy; cgroups and runtime
// directories nobody owns are removed.
func (s *Supervisor) Recover(ctx context.Context) error {
	projects, err := s.opts.Store.ListProjects(ctx)
	if err != nil {
		return err
	}
	byName := map[string]store.Project{}
	for _, p := range projects {
		byName[p.Name] = p
	}
	recs, err := s.opts.Store.ListAgents(ctx, "")
	if err != nil {
		return err
	}
	owned := map[string]bool{}
	for _, rec := range recs {
		p, ok := byName[rec.Project]
		if !ok || rec.Reason == "Removed" {
			continue
		}
		var ra manifest.ResolvedAgent
		if err := json.Unmarshal(rec.Spec, &ra); err != nil {
			s.log.Error("recover: bad agent spec", logkey.Project, rec.Project, logkey.Agent, rec.Name, logkey.Err, err)
			continue
		}
		a := s.newAgent(p, ra)
		a.rec = rec
		a.uid = rec.UID
		a.stopReq = rec.Desired == "stopped"
		s.mu.Lock()
		s.agents[key(p.Name, ra.Name)] = a
		if rec.UID != 0 {
			s.uids[rec.UID] = key(p.Name, ra.Name)
		}
		s.mu.Unlock()
		owned[a.cgroupName()] = true

		if !State(rec.State).Active() {
			if rec.Desired == "running" && a.wantsRestart(State(rec.State)) && rec.Restarts < ra.MaxRestarts && rec.Reason != ReasonRestartLimit {
				// The daemon died during a restart backoff: carry on.
				s.spawn(a, nil, nil, true)
				continue
			}
			close(a.done)
			continue
		}
		exitFile := filepath.Join(a.runDir, "exit.json")
		if cg, err := s.opts.Cgroups.Load(a.cgroupName()); err == nil {
			a.cg = cg
		}
		proc, err := sandbox.Reattach(rec.Pid, rec.PidStart, exitFile)
		if err == nil {
			a.proc = proc
			info := AgentInfo{Project: a.project, Agent: a.spec, Run: rec.Restarts, UID: a.uid, GID: a.uid, RunDir: a.runDir}
			for _, w := range s.opts.Wirings {
				rw, ok := w.(Rewiring)
				if !ok {
					continue
				}
				c, err := rw.Rewire(ctx, info, proc.Pid)
				if err != nil {
					s.log.Warn("recover: rewire subsystem", logkey.Project, rec.Project, logkey.Agent, rec.Name, logkey.Err, err)
					continue
				}
				if c != nil {
					a.closers = append(a.closers, c)
				}
			}
			if out, errf, err := reopenFIFOs(a.runDir); err == nil {
				a.startCollectors(out, errf, rec.Restarts)
			} else {
				s.log.Warn("recover: reopen output", logkey.Project, rec.Project, logkey.Agent, rec.Name, logkey.Err, err)
			}
			if State(rec.State) == Starting {
				a.setState(Running, "", nil)
			}
			a.system(logs.LevelInfo, fmt.Sprintf("reattached after daemon restart (pid %d)", proc.Pid), nil)
			s.log.Info("reattached agent", logkey.Project, rec.Project, logkey.Agent, rec.Name, "pid", proc.Pid)
			s.spawn(a, proc, nil, false)
			continue
		}
		// It ended while we were away.
		st, ok := sandbox.ReadExitFile(exitFile)
		if !ok {
			st = sandbox.ExitStatus{Code: -1, Signal: "unknown"}
		}
		// Drain whatever output is still buffered in its FIFOs.
		if out, errf, err := reopenFIFOs(a.runDir); err == nil {
			a.startCollectors(out, errf, rec.Restarts)
		}
		a.system(logs.LevelWarn, "ended while the daemon was down", nil)
		s.spawn(a, nil, &st, false)
	}
	s.cleanupOrphans(owned)
	return nil
}

func (s *Supervisor) spawn(a *agent, proc *sandbox.Process, lost *sandbox.ExitStatus, resumeBackoff bool) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if resumeBackoff {
			a.mu.Lock()
			a.restartPending = true
			restarts := a.rec.Restarts
			a.mu.Unlock()
			select {
			case <-time.After(backoff(s.opts.BackoffInitial, s.opts.BackoffMax, restarts)):
			case <-a.wake:
			case <-a.detached:
				close(a.done)
				return
			}
			a.mu.Lock()
			a.restartPending = false
			a.rec.Restarts++
			a.mu.Unlock()
		}
		a.loop(proc, lost)
	}()
}

// cleanupOrphans removes cgroups under the daemon's parent that no known
// agent owns, killing what is left in them.
func (s *Supervisor) cleanupOrphans(owned map[string]bool) {
	names, err := s.opts.Cgroups.List()
	if err != nil {
		s.log.Warn("list cgroups", logkey.Err, err)
		return
	}
	for _, n := range names {
		if owned[n] {
			continue
		}
		if g, err := s.opts.Cgroups.Load(n); err == nil {
			if err := g.Delete(); err != nil {
				s.log.Warn("delete orphan cgroup", logkey.Cgroup, n, logkey.Err, err)
			} else {
				s.log.Info("deleted orphan cgroup", logkey.Cgroup, n)
			}
		}
	}
	// Runtime directories of projects that no longer exist.
	entries, _ := os.ReadDir(s.opts.RunDir)
	for _, e := range entries {
		if _, err := s.opts.Store.GetProject(context.Background(), e.Name()); err != nil {
			_ = os.RemoveAll(filepath.Join(s.opts.RunDir, e.Name()))
		}
	}
}
