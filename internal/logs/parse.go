package logs

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// Keys of a JSON line promoted into the record, in order of preference.
var (
	messageKeys = []string{"msg", "message"}
	levelKeys   = []string{"level", "lvl", "severity", "levelname"}
)

// levelNames maps lower-case level words to normalised levels.
var levelNames = map[string]string{
	"trace": LevelDebug, "debug": LevelDebug, "dbg": LevelDebug, "verbose": LevelDebug,
	"info": LevelInfo, "information": LevelInfo, "informational": LevelInfo, "notice": LevelInfo,
	"warn": LevelWarn, "warning": LevelWarn,
	"error": LevelError, "err": LevelError, "fatal": LevelError, "critical": LevelError,
	"crit": LevelError, "panic": LevelError, "alert": LevelError, "emerg": LevelError,
	"emergency": LevelError, "severe": LevelError,
}

// normalizeLevel maps a level word to a normalised level, or "" when it is
// not one.
func normalizeLevel(s string) string {
	if l, ok := levelNames[s]; ok {
		return l
	}
	s = strings.TrimSpace(s)
	var buf [16]byte // longer than any level word
	if len(s) > len(buf) {
		return ""
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return levelNames[string(buf[:len(s)])]
}

// numericLevel maps pino/bunyan numeric levels.
func numericLevel(n float64) string {
	switch {
	case n <= 20:
		return LevelDebug
	case n <= 30:
		return LevelInfo
	case n <= 40:
		return LevelWarn
	}
	return LevelError
}

// defaultLevel is the level of a line that names none.
func defaultLevel(stream string) string {
	if stream == StreamStderr {
		return LevelWarn
	}
	return LevelInfo
}

// ParseLine turns one line of agent output, without its "\n", into a
// record carrying m's project, agent, run and stream. Time, Seq and
// Truncated are left for the caller. It never fails and never keeps a
// reference to line. See the package documentation for the rules.
func ParseLine(line []byte, m Meta) Record {
	rec := Record{Project: m.Project, Agent: m.Agent, Run: m.Run, Stream: m.Stream}
	line = bytes.TrimSuffix(line, []byte("\r"))
	if obj, ok := jsonObject(line); ok {
		fromJSON(&rec, obj)
		if rec.Level == "" {
			rec.Level = defaultLevel(m.Stream)
		}
		return rec
	}
	s := strings.ToValidUTF8(string(line), "\uFFFD")
	rec.Level = detectLevel(s)
	if rec.Level == "" {
		rec.Level = defaultLevel(m.Stream)
	}
	if m.Strict {
		rec.Message = escapeControls(s)
		rec.Wrapped = true
	} else {
		rec.Message = s
	}
	return rec
}

// jsonObject decodes line if it is exactly one JSON object (surrounding
// white space allowed).
func jsonObject(line []byte) (map[string]any, bool) {
	t := bytes.TrimSpace(line)
	if len(t) < 2 || t[0] != '{' || t[len(t)-1] != '}' {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(t))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, false
	}
	if dec.InputOffset() != int64(len(t)) {
		return nil, false
	}
	return obj, true
}

func fromJSON(rec *Record, obj map[string]any) {
	for _, k := range messageKeys {
		v, ok := obj[k]
		if !ok {
			continue
		}
		switch v := v.(type) {
		case string:
			rec.Message = v
		case nil:
		default:
			b, _ := json.Marshal(v)
			rec.Message = string(b)
		}
		delete(obj, k)
		break
	}
	for _, k := range levelKeys {
		v, ok := obj[k]
		if !ok {
			continue
		}
		var l string
		switch v := v.(type) {
		case string:
			l = normalizeLevel(v)
		case json.Number:
			if f, err := strconv.ParseFloat(string(v), 64); err == nil {
				l = numericLevel(f)
			}
		}
		if l == "" {
			// Not a level we understand: keep the value, try the next key.
			continue
		}
		rec.Level = l
		delete(obj, k)
		break
	}
	if len(obj) > 0 {
		rec.Fields = obj
	}
}

// detectLevel finds a level word at the start of a text line (after ANSI
// codes and up to two timestamp tokens), or returns "".
func detectLevel(s string) string {
	if strings.IndexByte(s, 0x1b) >= 0 || strings.ContainsRune(s, 0x9b) {
		s = stripEscapes(s)
	}
	s = strings.TrimLeft(s, " \t")
	if strings.HasPrefix(s, "Traceback (most recent call last)") {
		return LevelError
	}
	for range 2 {
		tok, rest, _ := strings.Cut(s, " ")
		if !isTimestamp(tok) {
			break
		}
		s = strings.TrimLeft(rest, " \t")
	}
	if l := levelWord(s); l != "" {
		return l
	}
	return logfmtLevel(s)
}

// levelWord reads a level word at the start of s: "WARNING:", "[warn]",
// "ERROR ", "error:".
func levelWord(s string) string {
	bracket := false
	if s != "" && (s[0] == '[' || s[0] == '<') {
		bracket = true
		s = s[1:]
	}
	n := 0
	for n < len(s) && isLetter(s[n]) {
		n++
	}
	if n < 3 {
		return ""
	}
	word := s[:n]
	l := normalizeLevel(word)
	if l == "" {
		return ""
	}
	var next byte // 0 = end of line
	if n < len(s) {
		next = s[n]
	}
	switch {
	case bracket && (next == ']' || next == '>'):
		return l
	case next == ':':
		return l
	case isUpper(word) && (next == ' ' || next == '\t' || next == 0 || next == ']'):
		return l
	}
	return ""
}

// logfmtLevel finds a level=... or lvl=... pair near the start of s.
func logfmtLevel(s string) string {
	s = s[:min(len(s), 200)]
	for _, k := range []string{"level=", "lvl="} {
		i := strings.Index(s, k)
		if i < 0 || (i > 0 && s[i-1] != ' ' && s[i-1] != '\t') {
			continue
		}
		v := s[i+len(k):]
		if end := strings.IndexAny(v, " \t"); end >= 0 {
			v = v[:end]
		}
		return normalizeLevel(strings.Trim(v, `"`))
	}
	return ""
}

func isTimestamp(tok string) bool {
	tok = strings.Trim(tok, "[]")
	if tok == "" || tok[0] < '0' || tok[0] > '9' {
		return false
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if (c < '0' || c > '9') && !strings.ContainsRune("-:.,/TZ+", rune(c)) {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func isUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}
