package audit

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
	"golang.org/x/mod/sumdb/note"
)

// Options configure Open.
type Options struct {
	// Dir is the audit directory (var/lib/cortex/audit), made 0700.
	Dir string
	// SegmentSize: a segment is closed once it holds this many bytes.
	SegmentSize int64
	// CheckpointInterval: how often a signed checkpoint is appended while
	// entries arrive (0: only at rotation and Close).
	CheckpointInterval time.Duration
	// Fsync: Append returns only once the entry is on disk. Concurrent
	// appends share one fsync.
	Fsync  bool
	Logger *slog.Logger
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// Log is an open audit log: appends go to the newest segment file.
// It is safe for concurrent use.
type Log struct {
	opts   Options
	signer note.Signer
	vkey   string

	// syncMu orders fsyncs and rotations; it is taken before mu.
	syncMu sync.Mutex
	synced uint64 // entries known to be on disk

	mu      sync.Mutex
	f       *os.File
	seq     int
	off     int64 // bytes written to the current segment
	t       *tree
	lastCP  uint64 // index of the newest checkpoint entry
	broken  error  // set when a failed write could not be undone
	closed  bool
	damaged []string

	stop chan struct{}
	done chan struct{}
}

// Open opens (or creates) the log in opts.Dir: it makes the signing key
// on first use, reads the newest segment to recover the tree (removing a
// torn final entry a crash left), and starts the checkpoint timer.
// Problems found in the newest segment do not stop it: the segment is
// closed, a new one begun, and Damaged reports them (Verify keeps
// reporting the damage).
func Open(opts Options) (*Log, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = 16 << 20
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(opts.Dir, 0o700); err != nil {
		return nil, err
	}
	s, vkey, err := loadKeys(opts.Dir)
	if err != nil {
		return nil, errdefs.WithHint(errdefs.Wrap(errdefs.FailedPrecondition, fmt.Errorf("audit keys in %s: %w", opts.Dir, err)),
			"the audit signing key is damaged: move "+opts.Dir+" aside (keep it as evidence) to start a new log")
	}
	l := &Log{opts: opts, signer: s, vkey: vkey, stop: make(chan struct{}), done: make(chan struct{})}
	if err := l.recover(); err != nil {
		return nil, err
	}
	go l.checkpointLoop()
	return l, nil
}

// VerifierKey is the note verifier key of the log's checkpoints.
func (l *Log) VerifierKey() string { return l.vkey }

// Damaged lists what did not verify in the newest segment at Open.
func (l *Log) Damaged() []string { return l.damaged }

// Dir is the audit directory.
func (l *Log) Dir() string { return l.opts.Dir }

func (l *Log) recover() error {
	names, err := Dir(l.opts.Dir).Segments()
	if err != nil {
		return err
	}
	if len(names) == 0 {
		l.t = newTree()
		return l.startSegment(1, nil)
	}
	sort.Slice(names, func(i, j int) bool { return segmentSeq(names[i]) < segmentSeq(names[j]) })
	name := names[len(names)-1]
	seq := segmentSeq(name)
	path := filepath.Join(l.opts.Dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var notices []string
	if i := bytes.LastIndexByte(data, '\n'); i != len(data)-1 {
		// A crash during a write leaves a torn final entry: drop it, and
		// say so in the log.
		if err := os.Truncate(path, int64(i+1)); err != nil {
			return fmt.Errorf("remove the torn end of %s: %w", path, err)
		}
		notices = append(notices, fmt.Sprintf("removed an incomplete final entry of %d bytes from %s (a write cut short)", len(data)-(i+1), name))
		l.opts.Logger.Warn("audit: removed a torn final entry", "file", path, "bytes", len(data)-(i+1))
		data = data[:i+1]
	}
	lines := bytes.Split(data, []byte("\n"))
	lines = lines[:len(lines)-1]
	if len(lines) == 0 {
		return errdefs.WithHint(errdefs.New(errdefs.FailedPrecondition, "audit segment %s is empty: its head is gone", path),
			"move "+l.opts.Dir+" aside (keep it as evidence) to start a new log")
	}
	head, _, err := parseLine(lines[0])
	if err != nil || head.Kind != KindSegment || head.Segment == nil {
		return errdefs.WithHint(errdefs.New(errdefs.FailedPrecondition, "audit segment %s: its head does not read (%v), so the log cannot be continued", path, err),
			"run cortex audit verify; move "+l.opts.Dir+" aside (keep it as evidence) to start a new log")
	}
	t, err := treeFrom(head.Index, head.Segment.Range)
	if err != nil {
		return fmt.Errorf("audit segment %s: head: %w", path, err)
	}
	// Check the segment as Verify would (from its own head), and rebuild
	// the tree from its lines whatever their state.
	var res Result
	check := verifier{file: name, seq: seq, vkey: l.vkey, t: t.clone(), res: &res, after: func() error { return nil }}
	if err := check.segment(data); err != nil {
		l.damaged = append(l.damaged, err.Error())
	}
	for _, ln := range lines {
		e, leaf, err := parseLine(ln)
		if err != nil {
			leaf = ln
		}
		if err == nil && (e.Kind == KindCheckpoint || e.Kind == KindSegment) {
			l.lastCP = t.size()
		}
		t.append(leaf)
	}
	l.t = t
	l.synced = t.size()
	if len(l.damaged) > 0 {
		l.opts.Logger.Error("audit: the newest segment does not verify; closing it and starting a new one", "file", path, "problem", l.damaged[0])
		if err := l.startSegment(seq+1, nil); err != nil {
			return err
		}
		notices = append(notices, "segment "+name+" did not verify when the daemon opened it: "+l.damaged[0])
	} else {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		l.f, l.seq, l.off = f, seq, int64(len(data))
	}
	for _, n := range notices {
		if _, err := l.Append(Entry{Kind: KindNotice, Notice: n}); err != nil {
			return err
		}
	}
	return nil
}

// startSegment creates segment seq, whose head carries the tree so far
// and a signed checkpoint of it. Called with mu held (or before the log
// is shared); the previous file, if any, is closed.
func (l *Log) startSegment(seq int, prev *os.File) error {
	path := filepath.Join(l.opts.Dir, SegmentName(seq))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit: new segment: %w", err)
	}
	cp, err := signCheckpoint(l.signer, l.t.size(), l.t.root())
	if err != nil {
		f.Close()
		return err
	}
	hashes := l.t.hashes()
	if hashes == nil {
		hashes = [][]byte{}
	}
	e := Entry{Kind: KindSegment, Segment: &SegmentHead{Seq: seq, Range: hashes}, Checkpoint: string(cp)}
	t := l.t.clone()
	b, err := l.encode(&e, t)
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil && l.opts.Fsync {
		err = f.Sync()
	}
	if err == nil && l.opts.Fsync {
		err = syncDir(l.opts.Dir)
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("audit: write segment head: %w", err)
	}
	if prev != nil {
		_ = prev.Close()
	}
	l.f, l.seq, l.off, l.t = f, seq, int64(len(b)), t
	l.lastCP = e.Index
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// encode fills in e's version, index and time, appends its leaf to t and
// returns the line to write.
func (l *Log) encode(e *Entry, t *tree) ([]byte, error) {
	e.V = Version
	e.Index = t.size()
	if e.Time.IsZero() {
		e.Time = l.opts.Now()
	}
	e.Time = e.Time.UTC()
	e.Root = nil
	leaf, err := e.leaf()
	if err != nil {
		return nil, err
	}
	e.Root = t.append(leaf)
	return line(leaf, e.Root), nil
}

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit log closed")

// Append writes e (its V, Index, Time and Root are filled in) and, with
// Fsync, returns once it is on disk. It returns the entry's index. An
// error means the entry is not in the log.
func (l *Log) Append(e Entry) (uint64, error) {
	l.mu.Lock()
	idx, rotate, err := l.appendLocked(&e)
	l.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if l.opts.Fsync {
		if err := l.syncTo(idx + 1); err != nil {
			return 0, fmt.Errorf("audit: sync: %w", err)
		}
	}
	if rotate {
		if err := l.rotate(); err != nil {
			l.opts.Logger.Error("audit: rotate", "err", err)
		}
	}
	return idx, nil
}

func (l *Log) appendLocked(e *Entry) (uint64, bool, error) {
	if l.closed {
		return 0, false, ErrClosed
	}
	if l.broken != nil {
		return 0, false, l.broken
	}
	t := l.t.clone()
	b, err := l.encode(e, t)
	if err != nil {
		return 0, false, err
	}
	if n, err := l.f.Write(b); err != nil {
		if n > 0 {
			if terr := l.f.Truncate(l.off); terr != nil {
				l.broken = fmt.Errorf("audit: a failed write could not be undone (%v); the log is closed to appends: %w", terr, err)
			}
		}
		return 0, false, fmt.Errorf("audit: write: %w", err)
	}
	l.off += int64(len(b))
	l.t = t
	if e.Kind == KindCheckpoint {
		l.lastCP = e.Index
	}
	return e.Index, l.off >= l.opts.SegmentSize, nil
}

// syncTo makes sure the first n entries are on disk; one fsync covers
// every entry written before it began.
func (l *Log) syncTo(n uint64) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.synced >= n {
		return nil
	}
	l.mu.Lock()
	f, size := l.f, l.t.size()
	l.mu.Unlock()
	if err := f.Sync(); err != nil {
		return err
	}
	l.synced = size
	return nil
}

// rotate closes the current segment with a checkpoint and begins the
// next, if it is still over its size.
func (l *Log) rotate() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.off < l.opts.SegmentSize {
		return nil
	}
	if err := l.checkpointLocked(); err != nil {
		return err
	}
	if err := l.f.Sync(); err != nil {
		return err
	}
	if err := l.startSegment(l.seq+1, l.f); err != nil {
		return err
	}
	l.synced = l.t.size()
	return nil
}

// checkpointLocked appends a signed checkpoint of the tree so far.
func (l *Log) checkpointLocked() error {
	cp, err := signCheckpoint(l.signer, l.t.size(), l.t.root())
	if err != nil {
		return err
	}
	_, _, err = l.appendLocked(&Entry{Kind: KindCheckpoint, Checkpoint: string(cp)})
	return err
}

// Checkpoint signs the log's head as it is now and returns the note
// (what cortex audit checkpoint prints). Keep it elsewhere: verifying
// against it later detects the removal or change of any entry it covers,
// the newest included. It appends nothing: the log's own checkpoints
// come on their timer.
func (l *Log) Checkpoint() ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	return signCheckpoint(l.signer, l.t.size(), l.t.root())
}

// Head returns the number of entries and the tree head.
func (l *Log) Head() (uint64, []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.t.size(), l.t.root()
}

func (l *Log) checkpointLoop() {
	defer close(l.done)
	if l.opts.CheckpointInterval <= 0 {
		<-l.stop
		return
	}
	tick := time.NewTicker(l.opts.CheckpointInterval)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
			if err := l.checkpointIfNew(); err != nil && !errors.Is(err, ErrClosed) {
				l.opts.Logger.Error("audit: checkpoint", "err", err)
			}
		}
	}
}

// checkpointIfNew appends a checkpoint when entries arrived since the
// last one.
func (l *Log) checkpointIfNew() error {
	l.mu.Lock()
	if l.closed || l.t.size() <= l.lastCP+1 {
		l.mu.Unlock()
		return nil
	}
	err := l.checkpointLocked()
	n := l.t.size()
	l.mu.Unlock()
	if err == nil && l.opts.Fsync {
		err = l.syncTo(n)
	}
	return err
}

// Close appends a final checkpoint, syncs and closes the segment.
func (l *Log) Close() error {
	select {
	case <-l.stop:
		return nil
	default:
	}
	close(l.stop)
	<-l.done
	err := l.checkpointIfNew()
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.f != nil {
		if serr := l.f.Sync(); err == nil {
			err = serr
		}
		if cerr := l.f.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Segments lists the segment files with the bytes of each that are
// complete (the newest may be growing).
func (l *Log) Segments() ([]SegmentInfo, error) {
	names, err := Dir(l.opts.Dir).Segments()
	if err != nil {
		return nil, err
	}
	sort.Slice(names, func(i, j int) bool { return segmentSeq(names[i]) < segmentSeq(names[j]) })
	l.mu.Lock()
	cur, off := l.seq, l.off
	l.mu.Unlock()
	var out []SegmentInfo
	for _, n := range names {
		si := SegmentInfo{Name: n, Seq: segmentSeq(n)}
		if si.Seq == cur {
			si.Size = off
		} else if fi, err := os.Stat(filepath.Join(l.opts.Dir, n)); err == nil {
			si.Size = fi.Size()
		}
		out = append(out, si)
	}
	return out, nil
}

// SegmentInfo names one segment file.
type SegmentInfo struct {
	Name string `json:"name"`
	Seq  int    `json:"seq"`
	Size int64  `json:"size"`
}

// ReadFile returns a file of the audit directory as Verify reads it: a
// segment up to its last complete entry, or the verifier key. The
// signing key is never returned.
func (l *Log) ReadFile(name string) ([]byte, error) {
	if name == SignerFile {
		return nil, errdefs.New(errdefs.PermissionDenied, "the audit signing key never leaves the daemon")
	}
	if name != VerifierFile && !segmentName.MatchString(name) {
		return nil, errdefs.New(errdefs.NotFound, "no audit file %q", name)
	}
	// Everything up to the offset taken first is complete: entries are
	// written whole under mu before off moves past them.
	l.mu.Lock()
	cur, off := l.seq, l.off
	l.mu.Unlock()
	data, err := Dir(l.opts.Dir).Read(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errdefs.New(errdefs.NotFound, "no audit file %q", name)
	}
	if err != nil {
		return nil, err
	}
	if segmentSeq(name) == cur && int64(len(data)) > off {
		data = data[:off]
	}
	return data, nil
}
