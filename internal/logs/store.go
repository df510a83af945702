package logs

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/logkey"
)

// Store collects, stores and serves agent logs. It is safe for concurrent
// use. Exactly one Store (one daemon) may write a directory at a time.
type Store struct {
	opts   Options
	logger *slog.Logger

	// Test hooks, set before use.
	afterWrite          func(project, agent string, last uint64)
	ringRecs, ringBytes int

	// gen changes whenever an agent entry is created or dropped, so
	// project-wide followers re-list agents only then.
	gen atomic.Uint64

	mu       sync.Mutex
	closed   bool
	agents   map[agentKey]*agentLog
	watchers map[string]map[*follower]struct{} // project-wide followers by project
}

type agentKey struct{ project, agent string }

var errClosed = errdefs.New(errdefs.Unavailable, "log store closed")

// Open opens (creating if needed) the store rooted at opts.Dir. Existing
// agents are recovered on first use: their newest segment is repaired and
// Seq continues after the last stored record. logger may be nil.
func Open(opts Options, logger *slog.Logger) (*Store, error) {
	if opts.Dir == "" {
		return nil, errdefs.New(errdefs.InvalidArgument, "log store: no directory")
	}
	if opts.SegmentSize < 0 || opts.Segments < 0 || opts.MaxLine < 0 {
		return nil, errdefs.New(errdefs.InvalidArgument, "log store: negative segment size, segment count or max line")
	}
	if opts.SegmentSize == 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.Segments == 0 {
		opts.Segments = DefaultSegments
	}
	if opts.MaxLine == 0 {
		opts.MaxLine = DefaultMaxLine
	}
	opts.MaxLine = max(opts.MaxLine, 8) // room for one UTF-8 sequence
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	return &Store{
		opts:      opts,
		logger:    logger.With(logkey.Subsystem, "logs"),
		ringRecs:  defaultRingRecords,
		ringBytes: defaultRingBytes,
		agents:    make(map[agentKey]*agentLog),
		watchers:  make(map[string]map[*follower]struct{}),
	}, nil
}

// Close flushes and closes every segment. Collect calls and followers
// still running return an Unavailable error.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var errs []error
	for _, a := range s.agents {
		errs = append(errs, a.close(errClosed))
	}
	s.agents = map[agentKey]*agentLog{}
	watchers := s.watchers
	s.watchers = map[string]map[*follower]struct{}{}
	s.gen.Add(1)
	s.mu.Unlock()

	for _, ws := range watchers {
		for f := range ws {
			f.notify()
		}
	}
	return errors.Join(errs...)
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// checkName refuses names that are not a single safe path element.
func checkName(what, name string) error {
	bad := name == "" || len(name) > 255 || name[0] == '.' || strings.ContainsAny(name, `/\`)
	for _, r := range name {
		bad = bad || r < 0x20 || r == 0x7f
	}
	if bad {
		return errdefs.New(errdefs.InvalidArgument, "log store: invalid %s name %q", what, name)
	}
	return nil
}

// agent returns the agent's log, creating the in-memory entry when create
// is set or when the agent has a directory on disk. It returns nil, nil
// for an agent that has neither.
func (s *Store) agent(project, name string, create bool) (*agentLog, error) {
	k := agentKey{project, name}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	if a := s.agents[k]; a != nil {
		return a, nil
	}
	dir := filepath.Join(s.opts.Dir, project, name)
	if !create {
		if _, err := os.Stat(dir); err != nil {
			return nil, nil
		}
	}
	a := &agentLog{
		project: project, agent: name, dir: dir,
		segSize: s.opts.SegmentSize, maxSegs: s.opts.Segments,
		logger: s.logger,
		ring:   ring{maxRecs: s.ringRecs, maxBytes: s.ringBytes},
	}
	if hook := s.afterWrite; hook != nil {
		a.afterWrite = func(last uint64) { hook(project, name, last) }
	}
	s.agents[k] = a
	s.gen.Add(1)
	for f := range s.watchers[project] {
		f.notify()
	}
	return a, nil
}

// projectAgents lists the agents of project known in memory or on disk,
// sorted by name.
func (s *Store) projectAgents(project string) ([]*agentLog, error) {
	names := map[string]bool{}
	entries, err := os.ReadDir(filepath.Join(s.opts.Dir, project))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list logs of project %s: %w", project, err)
	}
	for _, e := range entries {
		if e.IsDir() && checkName("agent", e.Name()) == nil {
			names[e.Name()] = true
		}
	}
	s.mu.Lock()
	for k := range s.agents {
		if k.project == project {
			names[k.agent] = true
		}
	}
	s.mu.Unlock()
	var out []*agentLog
	for _, n := range slices.Sorted(maps.Keys(names)) {
		a, err := s.agent(project, n, false)
		if err != nil {
			return nil, err
		}
		if a != nil {
			out = append(out, a)
		}
	}
	return out, nil
}

func (s *Store) watch(project string, f *follower) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.watchers[project] == nil {
		s.watchers[project] = make(map[*follower]struct{})
	}
	s.watchers[project][f] = struct{}{}
}

func (s *Store) unwatch(project string, f *follower) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.watchers[project], f)
	if len(s.watchers[project]) == 0 {
		delete(s.watchers, project)
	}
}

// Append stores one record, typically a supervisor lifecycle line
// ("started (run 1)"). Stream defaults to "system", Level to info (and is
// normalised), Time to now; Seq is always assigned. Message is repaired to
// valid UTF-8. Fields must be JSON-encodable. It returns the stored record;
// on a disk error the record is still delivered to followers and returned
// with the error.
func (s *Store) Append(rec Record) (Record, error) {
	if err := checkName("project", rec.Project); err != nil {
		return rec, err
	}
	if err := checkName("agent", rec.Agent); err != nil {
		return rec, err
	}
	switch rec.Stream {
	case "":
		rec.Stream = StreamSystem
	case StreamStdout, StreamStderr, StreamSystem:
	default:
		return rec, errdefs.New(errdefs.InvalidArgument, "log record: unknown stream %q", rec.Stream)
	}
	if l := normalizeLevel(rec.Level); l != "" {
		rec.Level = l
	} else {
		rec.Level = defaultLevel(rec.Stream)
	}
	rec.Message = strings.ToValidUTF8(rec.Message, "\uFFFD")
	rec.Fields = maps.Clone(rec.Fields)
	rec.Seq = 1
	if _, err := appendRecord(nil, &rec); err != nil {
		return rec, errdefs.New(errdefs.InvalidArgument, "log record: %v", err)
	}
	a, err := s.agent(rec.Project, rec.Agent, true)
	if err != nil {
		return rec, err
	}
	recs := []Record{rec}
	recs[0].Seq = 0
	err = a.append(recs, time.Now().UTC())
	return recs[0], err
}

// Remove deletes every log of project (cortex rm). Call it after the
// project's agents are stopped: Collect calls still running for it return
// a NotFound error, as do followers of it.
func (s *Store) Remove(project string) error {
	if err := checkName("project", project); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errClosed
	}
	gone := errdefs.New(errdefs.NotFound, "logs of project %s removed", project)
	for k, a := range s.agents {
		if k.project == project {
			_ = a.close(gone) // the files are deleted next
			delete(s.agents, k)
		}
	}
	s.gen.Add(1)
	s.mu.Unlock()
	if err := os.RemoveAll(filepath.Join(s.opts.Dir, project)); err != nil {
		return fmt.Errorf("remove logs of project %s: %w", project, err)
	}
	return nil
}

// Stats describes what is stored for one agent. It returns a NotFound
// error when nothing is.
func (s *Store) Stats(project, agent string) (AgentStats, error) {
	if err := checkName("project", project); err != nil {
		return AgentStats{}, err
	}
	if err := checkName("agent", agent); err != nil {
		return AgentStats{}, err
	}
	a, err := s.agent(project, agent, false)
	if err != nil {
		return AgentStats{}, err
	}
	if a != nil {
		st, ok, err := a.stats()
		if err != nil || ok {
			return st, err
		}
	}
	return AgentStats{}, errdefs.New(errdefs.NotFound, "no logs for agent %s of project %s", agent, project)
}
