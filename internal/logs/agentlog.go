package logs

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/cortexrt/cortex/internal/logkey"
)

// flushSize bounds the user-space buffer within one batch.
const flushSize = 1 << 20

// segInfo is one segment file of an agent.
type segInfo struct {
	first uint64 // seq of its first record (its name)
	size  int64
}

// follower is a reader waiting for new records. notify never blocks.
type follower struct{ wake chan struct{} }

func newFollower() *follower { return &follower{wake: make(chan struct{}, 1)} }

func (f *follower) notify() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// agentLog is the append path and segment set of one agent. All methods
// lock mu; the segment files are only written under it.
type agentLog struct {
	project, agent string
	dir            string
	segSize        int64
	maxSegs        int
	logger         *slog.Logger
	afterWrite     func(last uint64) // test hook, called under mu after each batch is written

	mu      sync.Mutex
	loaded  bool
	closed  error // set by close: appends and followers stop with it
	segs    []segInfo
	f       *os.File // current segment (segs[len-1]) open for append, or nil
	rotate  bool     // start a new segment on the next write (after a write error)
	failing bool     // the last write failed (for logging the first failure only)
	nextSeq uint64
	buf     []byte // encoded records not yet written
	line    []byte // scratch for one encoded record
	ring    ring
	subs    map[*follower]struct{}
}

func (a *agentLog) segPath(first uint64) string { return filepath.Join(a.dir, segName(first)) }

// load reads the segment list and recovers nextSeq. Called with mu held.
func (a *agentLog) load() error {
	if a.loaded {
		return nil
	}
	entries, err := os.ReadDir(a.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read log directory %s: %w", a.dir, err)
	}
	var segs []segInfo
	for _, e := range entries {
		first, ok := parseSegName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		segs = append(segs, segInfo{first: first, size: info.Size()})
	}
	slices.SortFunc(segs, func(x, y segInfo) int { return cmpUint(x.first, y.first) })
	a.nextSeq = 1
	if len(segs) > 0 {
		last := &segs[len(segs)-1]
		lastSeq, size, torn, err := recoverSegment(a.segPath(last.first))
		if err != nil {
			return fmt.Errorf("recover log segment of %s/%s: %w", a.project, a.agent, err)
		}
		if torn > 0 {
			a.logger.Warn("dropped torn last line of log segment", logkey.Project, a.project, logkey.Agent, a.agent,
				"segment", a.segPath(last.first), "bytes", torn)
		}
		last.size = size
		a.nextSeq = max(last.first, lastSeq+1)
	}
	a.segs = segs
	a.loaded = true
	return nil
}

func cmpUint(x, y uint64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// append assigns Seq (and Time when zero) to recs in place, writes them and
// publishes them to followers. A record that cannot be encoded keeps Seq 0
// and is not stored. It returns the first error; records are still
// published to followers when the disk write fails.
func (a *agentLog) append(recs []Record, now time.Time) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed != nil {
		return a.closed
	}
	if err := a.load(); err != nil {
		return err
	}
	var firstErr error
	keep := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for i := range recs {
		r := &recs[i]
		if r.Time.IsZero() {
			r.Time = now
		}
		r.Seq = a.nextSeq
		var err error
		if a.line, err = appendRecord(a.line[:0], r); err != nil {
			r.Seq = 0
			keep(err)
			continue
		}
		a.nextSeq++
		keep(a.write(a.line, r.Seq))
		a.ring.push(*r, len(a.line))
	}
	keep(a.flush())
	if cap(a.line) > flushSize {
		a.line = nil
	}
	if a.afterWrite != nil {
		a.afterWrite(a.nextSeq - 1)
	}
	for f := range a.subs {
		f.notify()
	}
	return firstErr
}

// write buffers one encoded record, rotating first when it would not fit.
func (a *agentLog) write(line []byte, seq uint64) error {
	if err := a.ensureSegment(seq, int64(len(line))); err != nil {
		return err
	}
	a.buf = append(a.buf, line...)
	if len(a.buf) >= flushSize {
		return a.flush()
	}
	return nil
}

// ensureSegment makes a.f a segment that can take n more bytes: the
// current one, the newest existing one (after load), or a new one named
// seq. A record larger than segSize gets a segment of its own.
func (a *agentLog) ensureSegment(seq uint64, n int64) error {
	if a.f != nil && !a.rotate {
		cur := a.segs[len(a.segs)-1].size + int64(len(a.buf))
		if cur == 0 || cur+n <= a.segSize {
			return nil
		}
	}
	flushErr := a.flush()
	if a.f != nil {
		a.f.Close()
		a.f = nil
	}
	if !a.rotate && len(a.segs) > 0 {
		last := a.segs[len(a.segs)-1]
		if last.size == 0 || last.size+n <= a.segSize {
			f, err := os.OpenFile(a.segPath(last.first), os.O_WRONLY|os.O_APPEND, 0)
			if err == nil {
				a.f = f
				return flushErr
			}
			a.logger.Warn("reopen log segment; starting a new one", logkey.Project, a.project, logkey.Agent, a.agent, logkey.Err, err)
		}
	}
	if err := os.MkdirAll(a.dir, 0o750); err != nil {
		return a.failed(fmt.Errorf("create log directory: %w", err))
	}
	f, err := os.OpenFile(a.segPath(seq), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return a.failed(fmt.Errorf("create log segment: %w", err))
	}
	a.f = f
	a.rotate = false
	if len(a.segs) > 0 && a.segs[len(a.segs)-1].first == seq {
		// An existing segment without valid records (crash right after
		// rotation): keep appending to it.
		if st, err := f.Stat(); err == nil {
			a.segs[len(a.segs)-1].size = st.Size()
		}
	} else {
		a.segs = append(a.segs, segInfo{first: seq})
	}
	a.prune()
	return flushErr
}

// prune deletes the oldest segments beyond maxSegs.
func (a *agentLog) prune() {
	for len(a.segs) > a.maxSegs {
		name := a.segPath(a.segs[0].first)
		if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			a.logger.Warn("remove old log segment", logkey.Project, a.project, logkey.Agent, a.agent, logkey.Err, err)
		}
		a.segs = slices.Delete(a.segs, 0, 1)
	}
}

// flush writes the buffer to the current segment with one write(2).
func (a *agentLog) flush() error {
	if len(a.buf) == 0 {
		return nil
	}
	defer func() {
		a.buf = a.buf[:0]
		if cap(a.buf) > 2*flushSize {
			a.buf = nil
		}
	}()
	if a.f == nil {
		return a.failed(errors.New("no open log segment"))
	}
	n, err := a.f.Write(a.buf)
	a.segs[len(a.segs)-1].size += int64(n)
	if err != nil {
		// The segment may now end in a torn line: continue in a new one.
		a.f.Close()
		a.f = nil
		a.rotate = true
		return a.failed(fmt.Errorf("write log segment: %w", err))
	}
	if a.failing {
		a.failing = false
		a.logger.Info("log writes recovered", logkey.Project, a.project, logkey.Agent, a.agent)
	}
	return nil
}

// failed logs the first of a run of write failures and returns err with
// the agent named.
func (a *agentLog) failed(err error) error {
	err = fmt.Errorf("logs of %s/%s: %w", a.project, a.agent, err)
	if !a.failing {
		a.failing = true
		a.logger.Error("log records not stored", logkey.Project, a.project, logkey.Agent, a.agent, logkey.Err, err)
	}
	return err
}

// close flushes and closes the agent's files; appends and followers then
// get err.
func (a *agentLog) close(err error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed != nil {
		return nil
	}
	a.closed = err
	ferr := a.flush()
	if a.f != nil {
		if cerr := a.f.Close(); cerr != nil && ferr == nil {
			ferr = fmt.Errorf("close log segment of %s/%s: %w", a.project, a.agent, cerr)
		}
		a.f = nil
	}
	for f := range a.subs {
		f.notify()
	}
	return ferr
}

// closedErr returns the error close was given, or nil.
func (a *agentLog) closedErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.closed
}

func (a *agentLog) subscribe(f *follower) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.subs == nil {
		a.subs = make(map[*follower]struct{})
	}
	a.subs[f] = struct{}{}
}

func (a *agentLog) unsubscribe(f *follower) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.subs, f)
}

// snapshot returns the first seqs of the segments and the last seq written.
func (a *agentLog) snapshot() (firsts []uint64, end uint64, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed != nil {
		return nil, 0, a.closed
	}
	if err := a.load(); err != nil {
		return nil, 0, err
	}
	firsts = make([]uint64, len(a.segs))
	for i, s := range a.segs {
		firsts[i] = s.first
	}
	return firsts, a.nextSeq - 1, nil
}

// pending returns what a follower at seq after has not seen: up to max
// records from the ring, or fromDisk when the ring no longer reaches back
// to after+1. end is the last seq the answer covers.
func (a *agentLog) pending(after uint64, max int) (recs []Record, end uint64, fromDisk bool, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed != nil {
		return nil, 0, false, a.closed
	}
	if err := a.load(); err != nil {
		return nil, 0, false, err
	}
	end = a.nextSeq - 1
	if end <= after {
		return nil, end, false, nil
	}
	if first, ok := a.ring.first(); !ok || after+1 < first {
		return nil, end, true, nil
	}
	recs = a.ring.after(after, max)
	if len(recs) == 0 {
		return nil, end, false, nil
	}
	return recs, recs[len(recs)-1].Seq, false, nil
}

func (a *agentLog) stats() (AgentStats, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed != nil {
		return AgentStats{}, false, a.closed
	}
	if err := a.load(); err != nil {
		return AgentStats{}, false, err
	}
	if len(a.segs) == 0 {
		return AgentStats{}, false, nil
	}
	st := AgentStats{Segments: len(a.segs), LastSeq: a.nextSeq - 1}
	for _, s := range a.segs {
		st.Bytes += s.size
	}
	st.Bytes += int64(len(a.buf))
	if first := a.segs[0].first; st.LastSeq >= first {
		st.FirstSeq = first
		st.Records = st.LastSeq - first + 1
	}
	return st, true, nil
}
