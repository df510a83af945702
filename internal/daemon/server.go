package daemon

import (
	"context"
	"errors"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/auth"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/llm"
	"github.com/cortexrt/cortex/internal/logkey"
	"github.com/cortexrt/cortex/internal/logs"
	"github.com/cortexrt/cortex/internal/supervisor"
)

// handler builds the API: every route on one mux, and the security
// pipeline (internal/auth) around all of it. Every pattern registered
// here needs its line in auth.Routes (TestRoutesClassified); one without
// is admin-only.
func (d *Daemon) handler() http.Handler {
	mux := &routeMux{ServeMux: http.NewServeMux()}
	h := func(pattern string, fn func(http.ResponseWriter, *http.Request) error) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if err := fn(w, r); err != nil {
				d.writeError(w, r, err)
			}
		})
	}
	h("GET /v1/version", d.getVersion)
	h("POST /v1/projects", d.postProject)
	h("GET /v1/projects", d.getProjects)
	h("POST /v1/projects/{project}/stop", d.stopProject)
	h("DELETE /v1/projects/{project}", d.deleteProject)
	h("GET /v1/projects/{project}/attach", d.attachProject)
	h("GET /v1/projects/{project}/denials", d.getDenials)
	h("GET /v1/agents", d.getAgents)
	h("GET /v1/agents/resolve", d.resolveAgent)
	h("GET /v1/agents/{project}/{agent}", d.inspectAgent)
	h("POST /v1/agents/{project}/{agent}/kill", d.killAgent)
	h("POST /v1/agents/{project}/{agent}/suspend", d.suspendAgent)
	h("POST /v1/agents/{project}/{agent}/resume", d.resumeAgent)
	h("GET /v1/logs", d.getLogs)
	h("GET /v1/events", d.getEvents)
	llmAdmin := d.llm.AdminHandler()
	mux.Handle("GET /v1/llm/usage", llmAdmin)
	mux.Handle("GET /v1/llm/models", llmAdmin)
	mux.Handle("POST /v1/llm/chat", llmAdmin)
	mux.Handle("POST /v1/llm/cassettes", llmAdmin)
	mux.Handle("GET /v1/llm/cassettes/{project}", llmAdmin)
	h("GET /v1/bus/stats", d.getBusStats)
	busAPI := d.bus.Handler()
	mux.Handle("POST /v1/bus/{project}/{channel}", busAPI)
	mux.Handle("GET /v1/bus/{project}/{channel}", busAPI)
	h("GET /v1/auth/whoami", d.getWhoami)
	h("GET /v1/auth/ca", d.getCA)
	h("GET /v1/auth/keys", d.getKeys)
	h("POST /v1/auth/keys", d.postKey)
	h("DELETE /v1/auth/keys/{name}", d.deleteKey)
	h("GET /v1/auth/certs", d.getCerts)
	h("POST /v1/auth/certs", d.postCert)
	h("DELETE /v1/auth/certs/{serial}", d.deleteCert)
	h("GET /v1/audit", d.getAudit)
	h("GET /v1/audit/checkpoint", d.getAuditCheckpoint)
	h("GET /v1/audit/files", d.getAuditFiles)
	h("GET /v1/audit/files/{name}", d.getAuditFile)
	h("GET /v1/ops/checks", d.getOpsChecks)
	h("POST /v1/ops/repair", d.postOpsRepair)
	h("GET /v1/ops/transactions", d.getOpsTransactions)
	h("POST /v1/ops/transactions/{id}/undo", d.postOpsUndo)
	h("POST /v1/ops/record", d.postOpsRecord)
	h("POST /v1/ops/hooks/{event}", d.postOpsHooks)
	h("POST /v1/ops/explain", d.postOpsExplain)
	h("POST /v1/ops/canary", d.postOpsCanary)
	d.patterns = mux.patterns
	d.pipeline.Mux = mux.ServeMux
	d.pipeline.NotFound = api.NotFound(mux.ServeMux)
	return d.pipeline
}

// routeMux is the API's mux, keeping the patterns registered so that a
// test can check every one is classified.
type routeMux struct {
	*http.ServeMux
	patterns []string
}

func (m *routeMux) Handle(pattern string, h http.Handler) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.Handle(pattern, h)
}

func (m *routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

func (d *Daemon) writeError(w http.ResponseWriter, r *http.Request, err error) {
	cat := errdefs.CategoryOf(err)
	if errors.Is(err, context.Canceled) {
		return
	}
	if cat == errdefs.Internal {
		d.log.Error("api error", "method", r.Method, "path", r.URL.Path, logkey.Err, err)
	}
	api.WriteError(w, 0, err)
}

func (d *Daemon) getVersion(w http.ResponseWriter, r *http.Request) error {
	api.WriteJSON(w, http.StatusOK, api.VersionInfo{
		Version: Version, API: api.Version, GoVersion: runtime.Version(), Pid: os.Getpid(), Root: d.paths.Root, Executable: executable(),
		Cgroup: "v" + strconv.Itoa(d.cgroups.Version()) + " (" + d.walls.Cgroup.Mode + ")", Walls: d.walls.List, Degraded: d.degraded(),
	})
	return nil
}

// executable is the daemon's binary as the kernel knows it.
func executable() string {
	p, _ := os.Readlink("/proc/self/exe")
	return p
}

func (d *Daemon) degraded() []string {
	if d.walls.Degraded {
		return d.walls.Missing
	}
	return nil
}

func (d *Daemon) getProjects(w http.ResponseWriter, r *http.Request) error {
	ps, err := d.store.ListProjects(r.Context())
	if err != nil {
		return err
	}
	out := []api.ProjectSummary{}
	caller := auth.CallerFrom(r.Context())
	for _, p := range ps {
		if !caller.SeesOwned(p.Name, p.OwnerUID) {
			continue
		}
		s := api.ProjectSummary{Name: p.Name, Digest: p.Digest, SourceDir: p.SourceDir, CreatedAt: p.CreatedAt, States: map[string]int{}}
		for _, a := range d.sup.List(r.Context(), p.Name, true) {
			s.Agents++
			s.States[string(a.State)]++
		}
		out = append(out, s)
	}
	api.WriteJSON(w, http.StatusOK, out)
	return nil
}

func graceOf(r *http.Request) (time.Duration, error) {
	g := r.URL.Query().Get("grace")
	if g == "" {
		return 0, nil
	}
	v, err := time.ParseDuration(g)
	if err != nil || v < 0 {
		return 0, errdefs.New(errdefs.InvalidArgument, "grace %q is not a duration; write e.g. 10s", g)
	}
	if v == 0 {
		v = time.Nanosecond // "kill now"
	}
	return v, nil
}

func (d *Daemon) stopProject(w http.ResponseWriter, r *http.Request) error {
	g, err := graceOf(r)
	if err != nil {
		return err
	}
	if err := d.sup.Stop(r.Context(), r.PathValue("project"), g); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (d *Daemon) deleteProject(w http.ResponseWriter, r *http.Request) error {
	project := r.PathValue("project")
	agents := d.sup.List(r.Context(), project, true)
	if err := d.sup.Remove(r.Context(), project, r.URL.Query().Get("force") == "1"); err != nil {
		return err
	}
	d.runMu.Lock()
	d.gcLayers()
	d.runMu.Unlock()
	d.learning.forget(project)
	d.forgetBus(r.Context(), project)
	if d.llm != nil {
		// Removed agents' gateway tokens are revoked.
		for _, a := range agents {
			d.llm.UnregisterAgent(project, a.Agent)
		}
		if err := d.llm.SetCassette(project, llm.ModeLive, nil); err != nil {
			d.log.Warn("llm cassette", "project", project, "err", err)
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// visible keeps the statuses of projects the caller sees.
func visible(ctx context.Context, sts []supervisor.Status) []supervisor.Status {
	caller := auth.CallerFrom(ctx)
	out := sts[:0:0]
	for _, s := range sts {
		if caller.Sees(s.Project) {
			out = append(out, s)
		}
	}
	return out
}

func (d *Daemon) getAgents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	api.WriteJSON(w, http.StatusOK, apiStatuses(visible(r.Context(), d.sup.List(r.Context(), q.Get("project"), q.Get("all") == "1"))))
	return nil
}

// resolveAgent turns "project/agent" (authorized on its project) or a
// bare agent name (looked up among the projects the caller sees) into a
// reference.
func (d *Daemon) resolveAgent(w http.ResponseWriter, r *http.Request) error {
	ref := r.URL.Query().Get("ref")
	if strings.Contains(ref, "/") {
		p, a, err := d.sup.Resolve(ref)
		if err != nil {
			return err
		}
		api.WriteJSON(w, http.StatusOK, api.AgentRef{Project: p, Agent: a})
		return nil
	}
	var cands []api.AgentRef
	for _, s := range visible(r.Context(), d.sup.List(r.Context(), "", true)) {
		if s.Agent == ref {
			cands = append(cands, api.AgentRef{Project: s.Project, Agent: s.Agent})
		}
	}
	switch len(cands) {
	case 0:
		return errdefs.WithHint(errdefs.New(errdefs.NotFound, "no agent named %q", ref), "cortex list -a")
	case 1:
		api.WriteJSON(w, http.StatusOK, cands[0])
		return nil
	}
	names := make([]string, len(cands))
	for i, c := range cands {
		names[i] = c.Project + "/" + c.Agent
	}
	sort.Strings(names)
	return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "agent name %q is ambiguous: %v", ref, names), "name it as project/agent, e.g. "+names[0])
}

// getBusStats is the bus's counters for the projects the caller sees.
func (d *Daemon) getBusStats(w http.ResponseWriter, r *http.Request) error {
	rep := d.bus.Report()
	caller := auth.CallerFrom(r.Context())
	chs := rep.Channels[:0:0]
	for _, c := range rep.Channels {
		if caller.Sees(c.Project) {
			chs = append(chs, c)
		}
	}
	brs := rep.Brokers[:0:0]
	for _, b := range rep.Brokers {
		if caller.Sees(b.Project) {
			brs = append(brs, b)
		}
	}
	rep.Channels, rep.Brokers = chs, brs
	api.WriteJSON(w, http.StatusOK, rep)
	return nil
}

func (d *Daemon) inspectAgent(w http.ResponseWriter, r *http.Request) error {
	in, err := d.sup.Inspect(r.Context(), r.PathValue("project"), r.PathValue("agent"))
	if err != nil {
		return err
	}
	in.Walls = d.agentWalls(in.Walls)
	var eg any
	if d.egress != nil {
		if st, ok := d.egress.Stats(in.Project, in.Agent); ok {
			eg = st
		}
	}
	api.WriteJSON(w, http.StatusOK, apiInspection(in, eg))
	return nil
}

func (d *Daemon) killAgent(w http.ResponseWriter, r *http.Request) error {
	g, err := graceOf(r)
	if err != nil {
		return err
	}
	if err := d.sup.Kill(r.Context(), r.PathValue("project"), r.PathValue("agent"), g); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (d *Daemon) suspendAgent(w http.ResponseWriter, r *http.Request) error {
	if err := d.sup.Suspend(r.Context(), r.PathValue("project"), r.PathValue("agent")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (d *Daemon) resumeAgent(w http.ResponseWriter, r *http.Request) error {
	if err := d.sup.Resume(r.Context(), r.PathValue("project"), r.PathValue("agent")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// lockedSSE serialises writes from several goroutines and flushes a
// burst at most every few milliseconds.
type lockedSSE struct {
	mu    sync.Mutex
	s     *api.SSEWriter
	dirty bool
	err   error
}

func (l *lockedSSE) send(event string, v any) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	l.err = l.s.Send(event, v)
	l.dirty = true
	return l.err
}

func (l *lockedSSE) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dirty {
		l.s.Flush()
		l.dirty = false
	}
}

// flusher flushes l every interval until ctx is done, and once more at
// the end.
func (l *lockedSSE) flusher(ctx context.Context) func() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(15 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				l.flush()
				return
			case <-t.C:
				l.flush()
			}
		}
	}()
	return func() { <-done }
}

func logsQuery(r *http.Request) (logs.Query, error) {
	q := r.URL.Query()
	lq := logs.Query{Project: q.Get("project"), Agent: q.Get("agent"), Follow: q.Get("follow") == "1"}
	if lq.Project == "" {
		return lq, errdefs.New(errdefs.InvalidArgument, "project is required")
	}
	if t := q.Get("tail"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			return lq, errdefs.New(errdefs.InvalidArgument, "tail %q is not a number", t)
		}
		lq.Tail = n
	}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return lq, errdefs.New(errdefs.InvalidArgument, "since %q is not an RFC 3339 time", s)
		}
		lq.Since = t
	}
	return lq, nil
}

func (d *Daemon) getLogs(w http.ResponseWriter, r *http.Request) error {
	lq, err := logsQuery(r)
	if err != nil {
		return err
	}
	if _, err := d.store.GetProject(r.Context(), lq.Project); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	out := &lockedSSE{s: api.NewSSEWriter(w)}
	wait := out.flusher(ctx)
	defer wait()
	defer cancel()
	err = d.logs.Read(ctx, lq, func(rec logs.Record) error { return out.send("log", rec) })
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (d *Daemon) getEvents(w http.ResponseWriter, r *http.Request) error {
	events, unsub := d.sup.Subscribe(r.URL.Query().Get("project"))
	defer unsub()
	caller := auth.CallerFrom(r.Context())
	out := api.NewSSEWriter(w)
	for {
		select {
		case <-r.Context().Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			if !caller.Sees(ev.Project) {
				continue
			}
			if err := out.Send("state", apiEvent(ev)); err != nil {
				return nil
			}
			out.Flush()
		}
	}
}

// attachProject streams a project's output and state changes until every
// agent has ended for good, then sends "end" with the final states.
func (d *Daemon) attachProject(w http.ResponseWriter, r *http.Request) error {
	project := r.PathValue("project")
	if _, err := d.store.GetProject(r.Context(), project); err != nil {
		return err
	}
	var since time.Time
	if s := r.URL.Query().Get("since"); s != "" {
		since, _ = time.Parse(time.RFC3339Nano, s)
	}
	events, unsub := d.sup.Subscribe(project)
	defer unsub()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	out := &lockedSSE{s: api.NewSSEWriter(w)}
	waitFlush := out.flusher(ctx)

	var seqMu sync.Mutex
	delivered := map[string]uint64{}
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		_ = d.logs.Read(ctx, logs.Query{Project: project, Follow: true, Since: since}, func(rec logs.Record) error {
			seqMu.Lock()
			delivered[rec.Agent] = rec.Seq
			seqMu.Unlock()
			return out.send("log", rec)
		})
	}()

	allFinal := func() ([]supervisor.Status, bool) {
		sts := d.sup.List(ctx, project, true)
		for _, s := range sts {
			if s.State.Active() || s.RestartPending {
				return sts, false
			}
		}
		return sts, true
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		sts, done := allFinal()
		if done {
			// Let the log reader deliver everything written so far.
			deadline := time.Now().Add(3 * time.Second)
			for time.Now().Before(deadline) {
				behind := false
				for _, s := range sts {
					st, err := d.logs.Stats(project, s.Agent)
					seqMu.Lock()
					got := delivered[s.Agent]
					seqMu.Unlock()
					if err == nil && st.LastSeq > got {
						behind = true
					}
				}
				if !behind {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			end := api.AttachEnd{Agents: apiStatuses(sts), Failed: []string{}}
			for _, s := range sts {
				if s.State == supervisor.Failed {
					end.Failed = append(end.Failed, s.Project+"/"+s.Agent)
				}
			}
			sort.Strings(end.Failed)
			_ = out.send("end", end)
			cancel()
			<-logsDone
			waitFlush()
			return nil
		}
		select {
		case <-ctx.Done():
			<-logsDone
			waitFlush()
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			_ = out.send("state", apiEvent(ev))
		case <-tick.C:
		}
	}
}
