package daemon

import (
	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/supervisor"
)

// The supervisor owns the lifecycle model; these turn it into the API's
// wire types, at the edge, so neither package depends on the other.

func apiStatus(s supervisor.Status) api.AgentStatus {
	return api.AgentStatus{
		Project: s.Project, Agent: s.Agent, Description: s.Description,
		State: api.State(s.State), Reason: s.Reason, ExitCode: s.ExitCode, Pid: s.Pid,
		Restarts: s.Restarts, RestartPending: s.RestartPending,
		StartedAt: s.StartedAt, FinishedAt: s.FinishedAt,
		CPUPercent: s.CPUPercent, MemoryBytes: s.MemoryBytes, MemoryLimit: s.MemoryLimit,
		Degraded: s.Degraded,
	}
}

func apiStatuses(ss []supervisor.Status) []api.AgentStatus {
	out := make([]api.AgentStatus, len(ss))
	for i, s := range ss {
		out[i] = apiStatus(s)
	}
	return out
}

func apiEvent(e supervisor.Event) api.Event {
	return api.Event{
		Time: e.Time, Project: e.Project, Agent: e.Agent, Run: e.Run,
		State: api.State(e.State), Reason: e.Reason, ExitCode: e.ExitCode, RestartPending: e.RestartPending,
	}
}

func apiInspection(in supervisor.Inspection, egress any) api.Inspection {
	out := api.Inspection{
		AgentStatus:   apiStatus(in.Status),
		Spec:          in.Spec,
		Limits:        in.Limits,
		UID:           in.UID,
		Cgroup:        in.Cgroup,
		CgroupVersion: in.CgroupVersion,
		Walls:         make([]api.Wall, len(in.Walls)),
		BundleDigest:  in.BundleDigest,
		BundleDir:     in.BundleDir,
		SourceDir:     in.SourceDir,
		History:       make([]api.HistoryEvent, len(in.History)),
		Logs:          in.Logs,
		Egress:        egress,
	}
	for i, w := range in.Walls {
		out.Walls[i] = api.Wall{Name: w.Name, Up: w.Up, Detail: w.Detail}
	}
	if r := in.LastOOM; r != nil {
		out.LastOOM = &api.OOMReport{Run: r.Run, Time: r.Time, Limit: r.Limit, Peak: r.Peak, Usage: r.Usage,
			Anon: r.Anon, File: r.File, Shmem: r.Shmem, Kernel: r.Kernel, Sock: r.Sock}
	}
	for i, e := range in.History {
		out.History[i] = api.HistoryEvent{ID: e.ID, Project: e.Project, Agent: e.Agent, Run: e.Run, State: e.State, Reason: e.Reason, ExitCode: e.ExitCode, Time: e.Time}
	}
	return out
}
