package bus

import (
	"bufio"
	"bytes"
	"errors"
	"regexp"
	"strconv"
	"time"

	"github.com/cortexrt/cortex/internal/jsonstr"
)

// readLine reads one '\n'-terminated line (without the terminator and a
// trailing '\r'). A line longer than limit bytes is consumed and
// discarded; its first bytes come back as over, so the caller can answer
// it. The returned line is valid until the next call.
func readLine(r *bufio.Reader, limit int) (line, over []byte, err error) {
	var buf []byte
	for {
		frag, err := r.ReadSlice('\n')
		switch {
		case err == nil:
			line = frag
			if buf != nil {
				line = append(buf, frag...)
			}
			line = trimEOL(line)
			if len(line) > limit {
				return nil, head(line), nil
			}
			return line, nil, nil
		case errors.Is(err, bufio.ErrBufferFull):
			if len(buf)+len(frag) > limit+2 { // longer than any line within the limit plus "\r\n"
				h := head(append(buf, frag...))
				if err := discardLine(r); err != nil {
					return nil, nil, err
				}
				return nil, h, nil
			}
			buf = append(buf, frag...)
		default:
			return nil, nil, err
		}
	}
}

func head(b []byte) []byte {
	const n = 4096
	if len(b) > n {
		b = b[:n]
	}
	return bytes.Clone(b)
}

func discardLine(r *bufio.Reader) error {
	for {
		_, err := r.ReadSlice('\n')
		if err == nil {
			return nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// idRE finds a request's "id" before any nested object (the payload).
var idRE = regexp.MustCompile(`^\s*\{[^{]*?"id"\s*:\s*"([^"\\]{1,128})"`)

// extractID recovers the id of a request that could not be decoded.
func extractID(line []byte) string {
	if m := idRE.FindSubmatch(line); m != nil {
		return string(m[1])
	}
	return ""
}

// appendMessageLine encodes a "message" line. The payload is inserted as
// is: it was validated and compacted when it entered the bus.
func appendMessageLine(b []byte, sub, channel string, e *envelope, seq uint64, ack string, redelivered bool) []byte {
	b = append(b, `{"op":"message","sub":`...)
	b = jsonstr.Append(b, sub)
	b = append(b, `,"channel":`...)
	b = jsonstr.Append(b, channel)
	b = append(b, `,"msg_id":`...)
	b = jsonstr.Append(b, e.ID)
	b = append(b, `,"from":`...)
	b = jsonstr.Append(b, e.From)
	b = append(b, `,"node":`...)
	b = jsonstr.Append(b, e.Node)
	b = append(b, `,"time":"`...)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if seq > 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, seq, 10)
	}
	if ack != "" {
		b = append(b, `,"ack":`...)
		b = jsonstr.Append(b, ack)
		if redelivered {
			b = append(b, `,"redelivered":true`...)
		}
	}
	b = append(b, `,"payload":`...)
	b = append(b, e.Payload...)
	return append(b, "}\n"...)
}
