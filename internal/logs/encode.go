package logs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/cortexrt/cortex/internal/jsonstr"
)

// appendRecord appends r as one JSON line (with "\n"), the segment file
// format. It is equivalent to json.Marshal of Record, without reflection
// for the fixed fields.
func appendRecord(b []byte, r *Record) ([]byte, error) {
	if y := r.Time.Year(); y < 0 || y > 9999 {
		return b, fmt.Errorf("record time %v out of range", r.Time)
	}
	var fields []byte
	if len(r.Fields) > 0 {
		var err error
		if fields, err = appendValue(nil, r.Fields, 0); err != nil {
			return b, fmt.Errorf("encode fields: %w", err)
		}
	}
	b = append(b, `{"time":"`...)
	b = r.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"project":`...)
	b = jsonstr.Append(b, r.Project)
	b = append(b, `,"agent":`...)
	b = jsonstr.Append(b, r.Agent)
	b = append(b, `,"run":`...)
	b = strconv.AppendInt(b, int64(r.Run), 10)
	b = append(b, `,"stream":`...)
	b = jsonstr.Append(b, r.Stream)
	b = append(b, `,"level":`...)
	b = jsonstr.Append(b, r.Level)
	b = append(b, `,"message":`...)
	b = jsonstr.Append(b, r.Message)
	if fields != nil {
		b = append(b, `,"fields":`...)
		b = append(b, fields...)
	}
	if r.Wrapped {
		b = append(b, `,"wrapped":true`...)
	}
	if r.Truncated {
		b = append(b, `,"truncated":true`...)
	}
	return append(b, '}', '\n'), nil
}

// appendValue encodes the types JSON decoding produces (with UseNumber)
// directly, in sorted key order like encoding/json, and anything else with
// encoding/json.
func appendValue(b []byte, v any, depth int) ([]byte, error) {
	if depth > 1000 {
		return b, errors.New("value nested too deeply")
	}
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return jsonstr.Append(b, v), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case json.Number:
		if !isJSONNumber(string(v)) {
			return b, fmt.Errorf("invalid number %q", string(v))
		}
		return append(b, v...), nil
	case map[string]any:
		keys := slices.Sorted(maps.Keys(v))
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonstr.Append(b, k)
			b = append(b, ':')
			var err error
			if b, err = appendValue(b, v[k], depth+1); err != nil {
				return b, err
			}
		}
		return append(b, '}'), nil
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendValue(b, e, depth+1); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	}
	enc, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, enc...), nil
}

// isJSONNumber reports whether s is a number in JSON's grammar.
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

var errNoSeq = errors.New("record without seq")

// decodeRecord parses one segment line (without "\n"). Numbers in Fields
// decode as json.Number.
func decodeRecord(line []byte) (Record, error) {
	var r Record
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		return Record{}, err
	}
	if dec.InputOffset() != int64(len(bytes.TrimRight(line, " \t\r"))) {
		return Record{}, errors.New("trailing data after record")
	}
	if r.Seq == 0 {
		return Record{}, errNoSeq
	}
	return r, nil
}

// decodeSeq returns the seq of a segment line if the line is a valid record.
func decodeSeq(line []byte) (uint64, bool) {
	var r struct {
		Seq uint64 `json:"seq"`
	}
	if json.Unmarshal(line, &r) != nil || r.Seq == 0 {
		return 0, false
	}
	return r.Seq, true
}
