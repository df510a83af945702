package daemon

import (
	"context"
	"time"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/events"
	"github.com/cortexrt/cortex/internal/hooks"
	"github.com/cortexrt/cortex/internal/logkey"
	"github.com/cortexrt/cortex/internal/manifest"
)

// Lifecycle hooks (internal/hooks): pre-run gates project creation
// (run.go), post-run follows it, agent-start, agent-exit and agent-oom
// are fed from the event stream, pre-update and post-update run when
// cortex-ops update asks (ops.go).

func hookEnv(p config.Paths) []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"CORTEX_ROOT=" + p.Root,
		"CORTEX_HOST=unix://" + p.Socket,
		"LC_ALL=C.UTF-8",
	}
}

// startHooks makes the runner and subscribes the agent hooks to the event
// stream (before Recover, so exits found while recovering fire them).
func (d *Daemon) startHooks() {
	d.hooks = hooks.New(d.paths.HooksDir, d.cfg.Ops.HookTimeout, d.log.With(logkey.Subsystem, "hooks"), hookEnv(d.paths))
	sub := d.events.Subscribe("hooks", 1024, events.OfType(events.AgentState, events.AgentOOM))
	d.goBG(func(ctx context.Context) {
		defer sub.Close()
		var reported uint64
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-sub.C:
				if !ok {
					return
				}
				d.agentHook(ctx, e)
				if n := sub.Dropped(); n > reported {
					d.log.Warn("agent hooks fell behind; events were not given to hooks", "dropped", n-reported)
					reported = n
				}
			}
		}
	})
}

func (d *Daemon) agentHook(ctx context.Context, e events.Event) {
	payload := map[string]any{"project": e.Project, "agent": e.Agent, "run": e.Run, "time": e.Time.UTC().Format(time.RFC3339Nano)}
	var event string
	switch det := e.Detail.(type) {
	case events.AgentStateDetail:
		switch det.State {
		case "running":
			event = hooks.AgentStart
		case "stopped", "failed":
			event = hooks.AgentExit
			payload["state"], payload["reason"], payload["restart_pending"] = det.State, det.Reason, det.RestartPending
			if det.ExitCode != nil {
				payload["exit_code"] = *det.ExitCode
			}
		}
	case events.AgentOOMDetail:
		event = hooks.AgentOOM
		payload["limit_bytes"], payload["usage"] = det.LimitBytes, det.Usage
	}
	if event == "" || len(d.hooks.Hooks(event)) == 0 {
		return
	}
	d.reportHooks(event, d.hooks.Run(ctx, event, payload))
}

// reportHooks puts failed hooks on the event stream (their output is in
// the log already).
func (d *Daemon) reportHooks(event string, res []hooks.Result) {
	for _, r := range res {
		if r.Err != nil {
			d.events.Emit(events.Event{Type: events.Ops, Detail: events.OpsDetail{Action: "hook", ID: event + "/" + r.Hook, Outcome: "failed", Message: r.Err.Error()}})
		}
	}
}

func (d *Daemon) hookPayload(project, digest string, uid, gid int, agents []string) map[string]any {
	return map[string]any{"project": project, "digest": digest, "uid": uid, "gid": gid, "agents": agents}
}

// preRunHooks gates a project's start: a hook that does not exit 0
// refuses the run with its message.
func (d *Daemon) preRunHooks(ctx context.Context, project, digest, bundleName, sourceDir string, uid, gid int, agents []manifest.ResolvedAgent) error {
	names := make([]string, len(agents))
	for i, a := range agents {
		names[i] = a.Name
	}
	if len(d.hooks.Hooks(hooks.PreRun)) == 0 {
		return nil
	}
	p := d.hookPayload(project, digest, uid, gid, names)
	p["bundle"], p["source_dir"] = bundleName, sourceDir
	res, err := d.hooks.Gate(ctx, hooks.PreRun, p)
	d.reportHooks(hooks.PreRun, res)
	if err != nil {
		d.log.Warn("project refused by a pre-run hook", logkey.Project, project, "uid", uid, logkey.Err, err)
	}
	return err
}

// postRunHooks runs after a project started, without holding up the
// answer to the client.
func (d *Daemon) postRunHooks(project, digest string, uid, gid int, agents []string) {
	if len(d.hooks.Hooks(hooks.PostRun)) == 0 {
		return
	}
	p := d.hookPayload(project, digest, uid, gid, agents)
	d.goBG(func(ctx context.Context) {
		d.reportHooks(hooks.PostRun, d.hooks.Run(ctx, hooks.PostRun, p))
	})
}
