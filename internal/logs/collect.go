package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
	"unicode/utf8"
)

// readSize is how much Collect asks for per read: a pipe's default
// capacity, so one read drains what is pending.
const readSize = 64 << 10

// Collect reads r line by line until EOF or ctx is done, turning each line
// into a record (ParseLine) and appending it to the agent m names. All
// lines taken by one read of r are written to the segment file with one
// write(2) before r is read again. It is safe to call concurrently for
// stdout and stderr of one agent and for many agents.
//
// When r has SetReadDeadline (an *os.File pipe or FIFO, a net.Conn),
// cancelling ctx interrupts a blocked read by setting a past deadline on
// r; otherwise Collect notices ctx at the next read. Lines already read,
// including a final partial line, are stored before it returns. It returns
// nil at EOF, ctx.Err() when ctx ended, and an error if reading failed or
// the store was closed or the project removed. A disk write error does not
// stop it (the agent must not block on a full pipe): the records still
// reach followers, and the first such error is returned at the end.
func (s *Store) Collect(ctx context.Context, r io.Reader, m Meta) error {
	if err := checkName("project", m.Project); err != nil {
		return err
	}
	if err := checkName("agent", m.Agent); err != nil {
		return err
	}
	switch m.Stream {
	case "":
		m.Stream = StreamStdout
	case StreamStdout, StreamStderr, StreamSystem:
	default:
		return fmt.Errorf("collect logs of %s/%s: unknown stream %q", m.Project, m.Agent, m.Stream)
	}
	a, err := s.agent(m.Project, m.Agent, true)
	if err != nil {
		return err
	}

	if d, ok := r.(interface{ SetReadDeadline(time.Time) error }); ok {
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			select {
			case <-ctx.Done():
				_ = d.SetReadDeadline(time.Unix(1, 0))
			case <-done:
			}
		})
		defer func() {
			close(done)
			wg.Wait()
		}()
	}

	var (
		sp       = splitter{max: s.opts.MaxLine}
		chunk    = make([]byte, readSize)
		batch    []Record
		storeErr error
	)
	emit := func(line []byte, truncated bool) {
		rec := ParseLine(line, m)
		rec.Truncated = truncated
		batch = append(batch, rec)
	}
	for {
		n, rerr := r.Read(chunk)
		if n > 0 {
			sp.feed(chunk[:n], emit)
		}
		ctxErr := ctx.Err()
		if rerr != nil || ctxErr != nil {
			sp.finish(emit)
		}
		if len(batch) > 0 {
			err := a.append(batch, time.Now().UTC())
			clear(batch)
			batch = batch[:0]
			if err != nil {
				if closedErr := a.closedErr(); closedErr != nil {
					return closedErr
				}
				if storeErr == nil {
					storeErr = err
				}
			}
		}
		switch {
		case ctxErr != nil:
			return ctxErr
		case rerr == nil:
		case errors.Is(rerr, io.EOF):
			return storeErr
		case errors.Is(rerr, os.ErrDeadlineExceeded) && ctx.Err() != nil:
			return ctx.Err()
		default:
			return errors.Join(fmt.Errorf("read %s of %s/%s: %w", m.Stream, m.Project, m.Agent, rerr), storeErr)
		}
	}
}

// splitter cuts a byte stream into lines of at most max bytes. A longer
// line is emitted in pieces (cut on a UTF-8 boundary), all marked
// truncated. Emitted slices are valid only during the emit call.
type splitter struct {
	max     int
	pending []byte // start of a line not yet ended
	cont    bool   // part of the pending line was already emitted
}

func (sp *splitter) feed(p []byte, emit func([]byte, bool)) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			sp.pending = append(sp.pending, p...)
			sp.cut(emit)
			return
		}
		line := p[:i]
		if len(sp.pending) > 0 {
			sp.pending = append(sp.pending, line...)
			line = sp.pending
		}
		sp.emitLine(line, sp.cont, emit)
		sp.pending = sp.pending[:0]
		sp.cont = false
		p = p[i+1:]
	}
	if cap(sp.pending) > 4*sp.max && len(sp.pending) == 0 {
		sp.pending = nil
	}
}

// finish emits a final partial line.
func (sp *splitter) finish(emit func([]byte, bool)) {
	if len(sp.pending) > 0 {
		sp.emitLine(sp.pending, sp.cont, emit)
	}
	sp.pending = sp.pending[:0]
	sp.cont = false
}

// cut emits full-size pieces of a pending line that is already too long.
func (sp *splitter) cut(emit func([]byte, bool)) {
	off := 0
	for len(sp.pending)-off > sp.max {
		k := cutPoint(sp.pending[off:], sp.max)
		emit(sp.pending[off:off+k], true)
		off += k
		sp.cont = true
	}
	if off > 0 {
		sp.pending = append(sp.pending[:0], sp.pending[off:]...)
	}
}

func (sp *splitter) emitLine(line []byte, truncated bool, emit func([]byte, bool)) {
	for len(line) > sp.max {
		k := cutPoint(line, sp.max)
		emit(line[:k], true)
		line = line[k:]
		truncated = true
	}
	emit(line, truncated)
}

// cutPoint returns where to cut b (len(b) > max) so the piece is at most
// max bytes and does not end inside a UTF-8 sequence.
func cutPoint(b []byte, max int) int {
	for k := max; k > max-utf8.UTFMax && k > 0; k-- {
		if utf8.RuneStart(b[k]) {
			return k
		}
	}
	return max
}
