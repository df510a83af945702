package logs

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// followBatch bounds the records taken from a ring per agent per round.
const followBatch = 4096

// Read streams the records q selects to fn: per agent in Seq order, agents
// interleaved by Time. Tail counts per agent. Without Follow it returns
// after the records stored when it started (an agent or project without
// logs yields nothing, not an error). With Follow it then streams new
// records, including those of agents that appear later, until ctx is done
// (returning ctx.Err()), fn returns an error (returned as is), or the store
// is closed or the project removed (an Unavailable or NotFound error).
// Records passed to fn share their Fields map: fn must not modify it.
func (s *Store) Read(ctx context.Context, q Query, fn func(Record) error) error {
	if err := checkName("project", q.Project); err != nil {
		return err
	}
	if q.Agent != "" {
		if err := checkName("agent", q.Agent); err != nil {
			return err
		}
	}
	if q.Tail < 0 {
		return errdefs.New(errdefs.InvalidArgument, "log query: negative tail %d", q.Tail)
	}
	rd := &reader{s: s, q: q, fn: fn, cursor: map[string]uint64{}, agents: map[string]*agentLog{}}
	if q.Follow {
		rd.f = newFollower()
		// Watch before listing, so an agent created in between wakes us.
		s.watch(q.Project, rd.f)
		defer s.unwatch(q.Project, rd.f)
		defer func() {
			for _, a := range rd.agents {
				a.unsubscribe(rd.f)
			}
		}()
	}
	rd.gen = s.gen.Load()
	agents, err := rd.list()
	if err != nil {
		return err
	}
	var srcs []*source
	for _, a := range agents {
		rd.add(a)
		// Subscribed before the snapshot: whatever comes after end wakes us.
		firsts, end, err := a.snapshot()
		if err != nil {
			return rd.stopErr(err)
		}
		after := rd.cursor[a.agent]
		if end <= after {
			continue
		}
		if q.Tail > 0 {
			recs, err := tail(a.dir, firsts, after, end, q.Tail, q.Since)
			if err != nil {
				return err
			}
			srcs = append(srcs, &source{agent: a.agent, recs: recs, end: end})
		} else {
			srcs = append(srcs, &source{agent: a.agent, it: newSegIter(a.dir, firsts, after, end), end: end})
		}
	}
	if err := rd.drain(ctx, srcs); err != nil {
		return err
	}
	if !q.Follow {
		return nil
	}
	for {
		if err := rd.catchUp(ctx); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-rd.f.wake:
		}
	}
}

// reader is the state of one Read call.
type reader struct {
	s      *Store
	q      Query
	fn     func(Record) error
	f      *follower            // nil unless following
	agents map[string]*agentLog // followed agents by name
	cursor map[string]uint64    // per agent: highest seq examined
	gen    uint64               // Store.gen when the agents were last listed
}

// list returns the agents the query covers right now.
func (rd *reader) list() ([]*agentLog, error) {
	if rd.q.Agent == "" {
		return rd.s.projectAgents(rd.q.Project)
	}
	a, err := rd.s.agent(rd.q.Project, rd.q.Agent, rd.q.Follow)
	if err != nil || a == nil {
		return nil, err
	}
	return []*agentLog{a}, nil
}

// add starts tracking a (subscribing when following).
func (rd *reader) add(a *agentLog) {
	rd.agents[a.agent] = a
	rd.cursor[a.agent] = rd.q.AfterSeq[a.agent]
	if rd.f != nil {
		a.subscribe(rd.f)
	}
}

// stopErr maps an agent's close error for the caller.
func (rd *reader) stopErr(err error) error {
	if errors.Is(err, errClosed) || rd.s.isClosed() {
		return errClosed
	}
	return err
}

// catchUp delivers everything new since the cursors, from the rings or,
// for an agent that fell behind, from disk, until nothing is pending.
func (rd *reader) catchUp(ctx context.Context) (err error) {
	for {
		if rd.s.isClosed() {
			return errClosed
		}
		var agents []*agentLog
		if g := rd.s.gen.Load(); g != rd.gen {
			rd.gen = g
			if agents, err = rd.list(); err != nil {
				return rd.stopErr(err)
			}
		}
		for _, a := range agents {
			old, ok := rd.agents[a.agent]
			if ok && old != a {
				// Entries are only replaced after Remove or Close.
				return rd.stopErr(old.closedErr())
			}
			if !ok {
				rd.add(a)
			}
		}
		var srcs []*source
		for name, a := range rd.agents {
			after := rd.cursor[name]
			recs, end, fromDisk, err := a.pending(after, followBatch)
			if err != nil {
				return rd.stopErr(err)
			}
			switch {
			case fromDisk:
				firsts, _, err := a.snapshot()
				if err != nil {
					return rd.stopErr(err)
				}
				srcs = append(srcs, &source{agent: name, it: newSegIter(a.dir, firsts, after, end), end: end})
			case len(recs) > 0:
				srcs = append(srcs, &source{agent: name, recs: recs, end: end})
			}
		}
		if len(srcs) == 0 {
			return nil
		}
		if err := rd.drain(ctx, srcs); err != nil {
			return err
		}
	}
}

// source yields one agent's records in Seq order, from a slice or from
// disk; after it is exhausted the agent's cursor moves to end.
type source struct {
	agent string
	recs  []Record
	it    *segIter
	end   uint64

	head Record
	ok   bool
}

func (src *source) advance() error {
	if src.it != nil {
		rec, ok, err := src.it.next()
		src.head, src.ok = rec, ok
		return err
	}
	if len(src.recs) == 0 {
		src.head, src.ok = Record{}, false
		return nil
	}
	src.head, src.ok = src.recs[0], true
	src.recs = src.recs[1:]
	return nil
}

// drain merges srcs by Time (ties by agent, then seq) and hands the records
// that pass the filters to fn, moving the cursors.
func (rd *reader) drain(ctx context.Context, srcs []*source) error {
	defer func() {
		for _, src := range srcs {
			if src.it != nil {
				src.it.close()
			}
		}
	}()
	live := srcs[:0:0]
	for _, src := range srcs {
		if err := src.advance(); err != nil {
			return err
		}
		if src.ok {
			live = append(live, src)
		} else {
			rd.cursor[src.agent] = max(rd.cursor[src.agent], src.end)
		}
	}
	for n := 0; len(live) > 0; n++ {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		best := 0
		for i := 1; i < len(live); i++ {
			if before(live[i].head, live[best].head) {
				best = i
			}
		}
		src := live[best]
		rec := src.head
		rd.cursor[src.agent] = max(rd.cursor[src.agent], rec.Seq)
		if rd.q.Since.IsZero() || !rec.Time.Before(rd.q.Since) {
			if err := rd.fn(rec); err != nil {
				return err
			}
		}
		if err := src.advance(); err != nil {
			return err
		}
		if !src.ok {
			rd.cursor[src.agent] = max(rd.cursor[src.agent], src.end)
			live = append(live[:best], live[best+1:]...)
		}
	}
	return nil
}

func before(x, y Record) bool {
	if !x.Time.Equal(y.Time) {
		return x.Time.Before(y.Time)
	}
	if x.Agent != y.Agent {
		return x.Agent < y.Agent
	}
	return x.Seq < y.Seq
}

// tail returns the last n records with after < Seq <= end and Time not
// before since, reading segments backwards from their end and only as far
// as needed.
func tail(dir string, firsts []uint64, after, end uint64, n int, since time.Time) ([]Record, error) {
	var rev []Record // newest first
	for i := len(firsts) - 1; i >= 0 && len(rev) < n; i-- {
		if firsts[i] > end {
			continue
		}
		if i+1 < len(firsts) && firsts[i+1]-1 <= after {
			break // this segment and older hold nothing after `after`
		}
		done := false
		err := scanBackward(filepath.Join(dir, segName(firsts[i])), 64<<10, func(line []byte) bool {
			if seq, ok := quickSeq(line); ok && seq > end {
				return false // newer than the snapshot (or garbage): skip
			}
			rec, err := decodeRecord(line)
			if err != nil || rec.Seq > end {
				return false
			}
			if rec.Seq <= after {
				done = true // seqs only decrease from here
				return true
			}
			if !since.IsZero() && rec.Time.Before(since) {
				return false
			}
			rev = append(rev, rec)
			return len(rev) >= n
		})
		if err != nil {
			return nil, err
		}
		if done {
			break
		}
	}
	slices.Reverse(rev)
	return rev, nil
}
