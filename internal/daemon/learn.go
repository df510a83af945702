package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/events"
	"github.com/cortexrt/cortex/internal/kaudit"
	"github.com/cortexrt/cortex/internal/learn"
	"github.com/cortexrt/cortex/internal/sandbox"
	"github.com/cortexrt/cortex/internal/supervisor"
)

// learning keeps what each project's agents were refused (a
// learn.Collector per project, fed by a tap on the event stream) and
// which projects run with --learn: their egress answers every name so a
// refused connection shows its port, and the kernel's refusals of their
// file system calls are read from the audit subsystem (kaudit) and
// emitted as fs.denied. Learning observes only: every wall stays as it is.
type learning struct {
	log   *slog.Logger
	ev    *events.Stream
	audit *kaudit.Auditor

	mu         sync.RWMutex
	collectors map[string]*learn.Collector
	learning   map[string]bool
	// fsUnavailable says why file system refusals could not be read, by
	// project (empty: they were, or no agent started yet).
	fsUnavailable map[string]string
}

func newLearning(ev *events.Stream, key string, log *slog.Logger) *learning {
	l := &learning{log: log, ev: ev, audit: kaudit.New(key, log),
		collectors: map[string]*learn.Collector{}, learning: map[string]bool{}, fsUnavailable: map[string]string{}}
	ev.Tap(l.tap)
	// Rules a killed daemon of this root left behind.
	if err := l.audit.Cleanup(); err != nil {
		log.Warn("audit rules of an earlier run", "err", err)
	}
	return l
}

// tap hands each event to its project's collector (cheap: a map lookup
// and the collector's own lock).
func (l *learning) tap(e events.Event) {
	if e.Project == "" {
		return
	}
	l.mu.RLock()
	c := l.collectors[e.Project]
	l.mu.RUnlock()
	if c != nil {
		c.Add(e)
	}
}

// start begins a project's run: its refusals are collected afresh, and
// it learns when asked to.
func (l *learning) start(project string, learnRun bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.collectors[project] = learn.NewCollector(project)
	delete(l.fsUnavailable, project)
	if learnRun {
		l.learning[project] = true
	} else {
		delete(l.learning, project)
	}
}

func (l *learning) forget(project string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.collectors, project)
	delete(l.learning, project)
	delete(l.fsUnavailable, project)
}

func (l *learning) isLearning(project string) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.learning[project]
}

func (l *learning) close() { _ = l.audit.Close() }

// learnWiring watches a learning agent's file system refusals from its
// start to its end.
type learnWiring struct{ l *learning }

var _ supervisor.Wiring = learnWiring{}

func (learnWiring) Prepare(context.Context, supervisor.AgentInfo, *sandbox.Spec) error { return nil }

func (la learnWiring) Wire(ctx context.Context, a supervisor.AgentInfo, pid int) (io.Closer, error) {
	l := la.l
	if !l.isLearning(a.Project) {
		return nil, nil
	}
	project, agent, run := a.Project, a.Agent.Name, a.Run
	ns, err := kaudit.PidNS(pid)
	var w io.Closer
	if err == nil {
		w, err = l.audit.Watch(a.UID, ns, func(d kaudit.Denial) {
			if d.Path != learn.AppDir && !strings.HasPrefix(d.Path, learn.AppDir+"/") {
				return // outside the project: nothing a grant could give
			}
			l.ev.Emit(events.Event{Project: project, Agent: agent, Run: run, Detail: events.FSDeniedDetail{
				Path: d.Path, Access: d.Access, Errno: d.Errno, Parent: d.Parent, PID: d.PID, Comm: d.Comm}})
		})
	}
	if err != nil {
		// Learning goes on without file system records.
		l.log.Warn("learn: file system refusals unavailable", "project", project, "agent", agent, "err", err)
		l.mu.Lock()
		l.fsUnavailable[project] = err.Error()
		l.mu.Unlock()
		return nil, nil
	}
	return w, nil
}

// getDenials answers GET /v1/projects/{project}/denials: what the
// project's agents were refused since it last started.
func (d *Daemon) getDenials(w http.ResponseWriter, r *http.Request) error {
	project := r.PathValue("project")
	l := d.learning
	l.mu.RLock()
	c := l.collectors[project]
	rep := api.DenialsReport{Project: project, Learning: l.learning[project], FSUnavailable: l.fsUnavailable[project]}
	l.mu.RUnlock()
	if c == nil {
		return errdefs.WithHint(errdefs.New(errdefs.NotFound, "no project %q has run since this daemon started", project), "cortex run --learn DIR")
	}
	ds, dropped := c.Denials()
	rep.Dropped = dropped
	rep.Denials = make([]api.Denial, len(ds))
	for i, x := range ds {
		rep.Denials[i] = api.Denial(x)
	}
	api.WriteJSON(w, http.StatusOK, rep)
	return nil
}
