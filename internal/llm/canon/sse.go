package canon

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// MaxSSELine bounds one line of an upstream event stream, so a broken or
// hostile upstream cannot make the gateway buffer without limit.
const MaxSSELine = 8 << 20

// SSEEvent is one dispatched server-sent event.
type SSEEvent struct {
	Event string // the event: field, "" when absent
	Data  []byte // data: lines joined by \n
}

// SSEReader reads server-sent events (the text/event-stream format of the
// HTML standard) one at a time, without buffering the stream. Lines end in
// \n or \r\n; comments and id/retry fields are ignored. An event not
// terminated by a blank line before EOF is still dispatched, because some
// servers end the stream right after their last data line.
type SSEReader struct {
	r     *bufio.Reader
	event string
	data  bytes.Buffer
	has   bool
	line  []byte
}

func NewSSEReader(r io.Reader) *SSEReader {
	return &SSEReader{r: bufio.NewReaderSize(r, 4<<10)}
}

// Next returns the next event, or io.EOF at the end of the stream.
func (s *SSEReader) Next() (SSEEvent, error) {
	for {
		line, err := s.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) && s.has {
				return s.dispatch(), nil
			}
			return SSEEvent{}, err
		}
		if len(line) == 0 {
			if s.has {
				return s.dispatch(), nil
			}
			s.event = ""
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "event":
			s.event = string(value)
		case "data":
			if s.has {
				s.data.WriteByte('\n')
			}
			s.data.Write(value)
			s.has = true
		}
	}
}

// buffered reports whether a whole further event is already read, i.e.
// whether Next can return it without waiting on the network.
func (s *SSEReader) buffered() bool {
	n := s.r.Buffered()
	if n == 0 {
		return false
	}
	b, _ := s.r.Peek(n)
	return bytes.Contains(b, []byte("\n\n")) || bytes.Contains(b, []byte("\r\n\r\n"))
}

func (s *SSEReader) dispatch() SSEEvent {
	ev := SSEEvent{Event: s.event, Data: bytes.Clone(s.data.Bytes())}
	s.event, s.has = "", false
	s.data.Reset()
	return ev
}

// readLine returns the next line without its terminator. The returned
// slice is valid until the next call.
func (s *SSEReader) readLine() ([]byte, error) {
	s.line = s.line[:0]
	for {
		chunk, err := s.r.ReadSlice('\n')
		s.line = append(s.line, chunk...)
		if len(s.line) > MaxSSELine {
			return nil, fmt.Errorf("event stream line longer than %d bytes", MaxSSELine)
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && len(s.line) > 0 {
			break
		}
		return nil, err
	}
	l := s.line
	if n := len(l); n > 0 && l[n-1] == '\n' {
		l = l[:n-1]
	}
	if n := len(l); n > 0 && l[n-1] == '\r' {
		l = l[:n-1]
	}
	return l, nil
}

// AppendSSE appends one event in wire form: an optional event: line, one
// data: line per line of data, and the blank line that dispatches it.
func AppendSSE(dst []byte, event string, data []byte) []byte {
	if event != "" {
		dst = append(dst, "event: "...)
		dst = append(dst, event...)
		dst = append(dst, '\n')
	}
	for {
		i := bytes.IndexByte(data, '\n')
		dst = append(dst, "data: "...)
		if i < 0 {
			dst = append(dst, bytes.TrimSuffix(data, []byte("\r"))...)
			dst = append(dst, '\n')
			break
		}
		dst = append(dst, bytes.TrimSuffix(data[:i], []byte("\r"))...)
		dst = append(dst, '\n')
		data = data[i+1:]
	}
	return append(dst, '\n')
}
