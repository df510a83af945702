package logs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

const segExt = ".jsonl"

// segName is the file name of the segment whose first record is first.
func segName(first uint64) string { return fmt.Sprintf("%012d%s", first, segExt) }

// parseSegName returns the first seq a segment file name stands for.
func parseSegName(name string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, segExt)
	if !ok || base == "" {
		return 0, false
	}
	for i := 0; i < len(base); i++ {
		if base[i] < '0' || base[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(base, 10, 64)
	return n, err == nil && n > 0
}

// readLine returns the next complete line of br without its "\n". A final
// line without "\n" (being written, or torn by a crash) is not returned:
// readLine reports io.EOF instead. The line is valid until the next call.
func readLine(br *bufio.Reader, scratch *[]byte) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == nil {
		return line[:len(line)-1], nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return nil, err
	}
	buf := append((*scratch)[:0], line...)
	for {
		line, err = br.ReadSlice('\n')
		buf = append(buf, line...)
		if err == nil {
			*scratch = buf
			return buf[:len(buf)-1], nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			*scratch = buf
			return nil, err
		}
	}
}

// quickSeq reads the seq of a segment line without decoding it, relying on
// the field order appendRecord writes. ok is false when it cannot tell. A
// garbage line can fool it: use it only to skip lines, never to stop.
func quickSeq(line []byte) (uint64, bool) {
	head := line[:min(len(line), 96)]
	i := bytes.Index(head, []byte(`","seq":`))
	if i < 0 {
		return 0, false
	}
	var n uint64
	j := i + len(`","seq":`)
	start := j
	for ; j < len(line) && line[j] >= '0' && line[j] <= '9'; j++ {
		n = n*10 + uint64(line[j]-'0')
	}
	if j == start || j-start > 19 || j >= len(line) || line[j] != ',' {
		return 0, false
	}
	return n, true
}

// segIter reads the records with after < Seq <= end from a list of
// segments, oldest first. Segments deleted by rotation while it runs are
// skipped; undecodable lines are skipped.
type segIter struct {
	dir        string
	firsts     []uint64
	after, end uint64

	i       int
	f       *os.File
	br      *bufio.Reader
	scratch []byte
	done    bool
}

func newSegIter(dir string, firsts []uint64, after, end uint64) *segIter {
	// Segments before the last one starting at or before after+1 hold
	// nothing newer than after.
	i := sort.Search(len(firsts), func(k int) bool { return firsts[k] > after+1 }) - 1
	return &segIter{dir: dir, firsts: firsts[max(i, 0):], after: after, end: end}
}

func (it *segIter) next() (Record, bool, error) {
	for !it.done {
		if it.f == nil {
			if it.i >= len(it.firsts) || it.firsts[it.i] > it.end {
				it.done = true
				break
			}
			name := filepath.Join(it.dir, segName(it.firsts[it.i]))
			it.i++
			f, err := os.Open(name)
			if errors.Is(err, fs.ErrNotExist) {
				continue // rotated away
			}
			if err != nil {
				it.done = true
				return Record{}, false, fmt.Errorf("open log segment: %w", err)
			}
			it.f = f
			if it.br == nil {
				it.br = bufio.NewReaderSize(f, 64<<10)
			} else {
				it.br.Reset(f)
			}
		}
		line, err := readLine(it.br, &it.scratch)
		if err != nil {
			it.closeFile()
			if errors.Is(err, io.EOF) {
				continue
			}
			it.done = true
			return Record{}, false, fmt.Errorf("read log segment: %w", err)
		}
		// quickSeq may only decide to skip a line (right whether the line
		// is valid or garbage); stopping needs a decoded record.
		if seq, ok := quickSeq(line); ok && seq <= it.after {
			continue
		}
		rec, err := decodeRecord(line)
		if err != nil || rec.Seq <= it.after {
			continue
		}
		if rec.Seq > it.end {
			it.done = true
			break
		}
		return rec, true, nil
	}
	it.closeFile()
	return Record{}, false, nil
}

func (it *segIter) closeFile() {
	if it.f != nil {
		it.f.Close()
		it.f = nil
	}
}

// close releases the open file; next then reports no more records.
func (it *segIter) close() {
	it.done = true
	it.closeFile()
}

// recoverSegment repairs the newest segment after a crash: a torn last
// line (no "\n") is truncated away. It returns the seq of the last valid
// record (0 if none) and the size after repair. It reads the file from the
// end, only as far back as the last valid line.
func recoverSegment(path string) (lastSeq uint64, size int64, torn int64, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, 0, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, 0, err
	}
	size = st.Size()
	for window := int64(64 << 10); ; window *= 4 {
		off := max(0, size-window)
		data := make([]byte, size-off)
		if _, err := f.ReadAt(data, off); err != nil && !errors.Is(err, io.EOF) {
			return 0, size, torn, fmt.Errorf("read %s: %w", path, err)
		}
		if len(data) > 0 && data[len(data)-1] != '\n' {
			nl := bytes.LastIndexByte(data, '\n')
			if nl < 0 && off > 0 {
				continue // the torn line is longer than the window
			}
			keep := off + int64(nl) + 1
			if err := f.Truncate(keep); err != nil {
				return 0, size, torn, fmt.Errorf("truncate torn line of %s: %w", path, err)
			}
			torn += size - keep
			size = keep
			data = data[:keep-off]
		}
		end := len(data)
		for end > 0 {
			start := bytes.LastIndexByte(data[:end-1], '\n') + 1
			if start == 0 && off > 0 {
				break // the line may begin before the window
			}
			if seq, ok := decodeSeq(data[start : end-1]); ok {
				return seq, size, torn, nil
			}
			end = start
		}
		if off == 0 {
			return 0, size, torn, nil
		}
	}
}

// scanBackward calls fn with the complete lines of the file at path, last
// first, until fn returns true, reading block bytes at a time. A final line
// without "\n" is skipped. A file deleted by rotation is treated as empty.
func scanBackward(path string, block int, fn func(line []byte) (stop bool)) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open log segment: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat log segment: %w", err)
	}
	var (
		buf      = make([]byte, block)
		carry    []byte // what follows the last line handed out: the end of a line that began earlier in the file
		dropping = true // still skipping a final line without "\n"
	)
	for off := st.Size(); off > 0; {
		k := min(int64(block), off)
		off -= k
		if _, err := f.ReadAt(buf[:k], off); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read log segment: %w", err)
		}
		data := append(buf[:k:k], carry...)
		if dropping {
			nl := bytes.LastIndexByte(data, '\n')
			if nl < 0 {
				carry = nil
				continue
			}
			data = data[:nl+1]
			dropping = false
		}
		// data ends with "\n"; hand out every line that starts in it.
		end := len(data)
		for end > 0 {
			i := bytes.LastIndexByte(data[:end-1], '\n')
			if i < 0 {
				break
			}
			if fn(data[i+1 : end-1]) {
				return nil
			}
			end = i + 1
		}
		carry = append([]byte(nil), data[:end]...)
	}
	if len(carry) > 0 && !dropping {
		fn(carry[:len(carry)-1])
	}
	return nil
}
