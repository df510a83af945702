package logs

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestParseLine(t *testing.T) {
	out := Meta{Project: "p", Agent: "a", Run: 2, Stream: StreamStdout}
	errm := Meta{Project: "p", Agent: "a", Run: 2, Stream: StreamStderr}
	strict := Meta{Project: "p", Agent: "a", Stream: StreamStdout, Strict: true}
	base := func(m Meta) Record { return Record{Project: m.Project, Agent: m.Agent, Run: m.Run, Stream: m.Stream} }
	with := func(m Meta, f func(*Record)) Record { r := base(m); f(&r); return r }

	cases := []struct {
		name string
		line string
		meta Meta
		want Record
	}{
		{"plain stdout", "hello world", out, with(out, func(r *Record) { r.Level, r.Message = "info", "hello world" })},
		{"plain stderr defaults to warn", "something odd", errm, with(errm, func(r *Record) { r.Level, r.Message = "warn", "something odd" })},
		{"empty line kept", "", out, with(out, func(r *Record) { r.Level = "info" })},
		{"crlf trimmed", "dos line\r", out, with(out, func(r *Record) { r.Level, r.Message = "info", "dos line" })},
		{"python logging info on stderr", "INFO:root:loaded 3 tools", errm, with(errm, func(r *Record) { r.Level, r.Message = "info", "INFO:root:loaded 3 tools" })},
		{"python logging warning", "WARNING:agent.worker:slow", errm, with(errm, func(r *Record) { r.Level, r.Message = "warn", "WARNING:agent.worker:slow" })},
		{"python logging critical", "CRITICAL:x:boom", errm, with(errm, func(r *Record) { r.Level, r.Message = "error", "CRITICAL:x:boom" })},
		{"python debug on stdout", "DEBUG:x:detail", out, with(out, func(r *Record) { r.Level, r.Message = "debug", "DEBUG:x:detail" })},
		{"asctime then level", "2024-05-01 12:00:00,123 ERROR worker crashed", out, with(out, func(r *Record) { r.Level, r.Message = "error", "2024-05-01 12:00:00,123 ERROR worker crashed" })},
		{"bracketed level", "[warn] disk almost full", out, with(out, func(r *Record) { r.Level, r.Message = "warn", "[warn] disk almost full" })},
		{"upper case word", "ERROR could not connect", out, with(out, func(r *Record) { r.Level, r.Message = "error", "ERROR could not connect" })},
		{"winston style", "error: ENOENT", out, with(out, func(r *Record) { r.Level, r.Message = "error", "error: ENOENT" })},
		{"node Error:", "Error: Cannot find module 'x'", errm, with(errm, func(r *Record) { r.Level, r.Message = "error", "Error: Cannot find module 'x'" })},
		{"capitalised word without colon is not a level", "Error rate is 5%", out, with(out, func(r *Record) { r.Level, r.Message = "info", "Error rate is 5%" })},
		{"level word later in line is not a level", "Got ERROR from server", out, with(out, func(r *Record) { r.Level, r.Message = "info", "Got ERROR from server" })},
		{"logfmt", `time=2024 level=warning msg="x"`, out, with(out, func(r *Record) { r.Level, r.Message = "warn", `time=2024 level=warning msg="x"` })},
		{"python traceback", "Traceback (most recent call last):", errm, with(errm, func(r *Record) { r.Level, r.Message = "error", "Traceback (most recent call last):" })},
		{"coloured level (uvicorn)", "\x1b[32mINFO\x1b[0m:     Started server", errm, with(errm, func(r *Record) { r.Level, r.Message = "info", "\x1b[32mINFO\x1b[0m:     Started server" })},
		{"json object", `{"msg":"hello","level":"WARNING","user":"bob","n":12345678901234567890}`, out, with(out, func(r *Record) {
			r.Level, r.Message = "warn", "hello"
			r.Fields = map[string]any{"user": "bob", "n": json.Number("12345678901234567890")}
		})},
		{"json message key and time kept", `{"message":"m","severity":"critical","ts":"2024-01-01T00:00:00Z"}`, errm, with(errm, func(r *Record) {
			r.Level, r.Message = "error", "m"
			r.Fields = map[string]any{"ts": "2024-01-01T00:00:00Z"}
		})},
		{"json pino numeric level", `{"level":30,"time":1,"msg":"up"}`, errm, with(errm, func(r *Record) {
			r.Level, r.Message = "info", "up"
			r.Fields = map[string]any{"time": json.Number("1")}
		})},
		{"json unknown level kept in fields", `{"level":"chatty","msg":"x"}`, errm, with(errm, func(r *Record) {
			r.Level, r.Message = "warn", "x"
			r.Fields = map[string]any{"level": "chatty"}
		})},
		{"json lvl alias", `{"lvl":"err","msg":"x"}`, out, with(out, func(r *Record) { r.Level, r.Message = "error", "x" })},
		{"json non-string msg", `{"msg":{"a":1}}`, out, with(out, func(r *Record) { r.Level, r.Message = "info", `{"a":1}` })},
		{"json with trailing garbage is text", `{"msg":"x"} tail`, out, with(out, func(r *Record) { r.Level, r.Message = "info", `{"msg":"x"} tail` })},
		{"json array is text", `[1,2]`, out, with(out, func(r *Record) { r.Level, r.Message = "info", `[1,2]` })},
		{"broken json is text", `{"msg": "x"`, out, with(out, func(r *Record) { r.Level, r.Message = "info", `{"msg": "x"` })},
		{"invalid utf8 repaired", "bad \xff\xfe bytes", out, with(out, func(r *Record) { r.Level, r.Message = "info", "bad \uFFFD bytes" })},
		{"invalid utf8 inside json repaired", "{\"msg\":\"a\xffb\"}", out, with(out, func(r *Record) { r.Level, r.Message = "info", "a\uFFFDb" })},
		{"control chars kept raw when not strict", "a\x1b[2Jb", out, with(out, func(r *Record) { r.Level, r.Message = "info", "a\x1b[2Jb" })},
		{"strict wraps and escapes", "a\x1b[2Jb\x07\tc\u202e", strict, with(strict, func(r *Record) {
			r.Level, r.Message, r.Wrapped = "info", `a\x1b[2Jb\x07\x09c\u202e`, true
		})},
		{"strict keeps json structured", `{"msg":"ok","level":"debug"}`, strict, with(strict, func(r *Record) { r.Level, r.Message = "debug", "ok" })},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseLine([]byte(tc.line), tc.meta)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseLine(%q) mismatch (-want +got):\n%s", tc.line, diff)
			}
		})
	}
}

func TestParseLineDoesNotKeepInput(t *testing.T) {
	buf := []byte(`plain text line`)
	rec := ParseLine(buf, Meta{Stream: StreamStdout})
	copy(buf, strings.Repeat("X", len(buf)))
	if rec.Message != "plain text line" {
		t.Fatalf("record aliases the input buffer: %q", rec.Message)
	}
}

func TestNormalizeLevel(t *testing.T) {
	cases := map[string]string{
		"warning": "warn", "WARN": "warn", "err": "error", "fatal": "error", "Critical": "error",
		"trace": "debug", "notice": "info", " info ": "info", "bogus": "",
	}
	for in, want := range cases {
		t.Run(in, func(t *testing.T) {
			if got := normalizeLevel(in); got != want {
				t.Errorf("normalizeLevel(%q) = %q, want %q", in, got, want)
			}
		})
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		"hello", "INFO:root:x", `{"msg":"a","level":40,"x":[1,{"y":null}]}`, "\x1b]0;title\x07x",
		"\xff\xfe", "{\"msg\":\"\\u001b[2J\"}", "2024-01-01 10:00:00 WARNING x", "[ERROR", "level=",
	} {
		f.Add([]byte(s), 0, false)
		f.Add([]byte(s), 1, true)
	}
	streams := []string{StreamStdout, StreamStderr, StreamSystem}
	levels := map[string]bool{LevelDebug: true, LevelInfo: true, LevelWarn: true, LevelError: true}
	f.Fuzz(func(t *testing.T, line []byte, stream int, strict bool) {
		m := Meta{Project: "p", Agent: "a", Stream: streams[uint(stream)%3], Strict: strict}
		rec := ParseLine(line, m)
		if !utf8.ValidString(rec.Message) {
			t.Fatalf("message not valid UTF-8: %q", rec.Message)
		}
		if !levels[rec.Level] {
			t.Fatalf("level %q not normalised", rec.Level)
		}
		if rec.Wrapped {
			for _, r := range rec.Message {
				if isControl(r) {
					t.Fatalf("wrapped message holds control %U: %q", r, rec.Message)
				}
			}
		}
		// The record must survive the segment encoding.
		rec.Seq = 1
		b, err := appendRecord(nil, &rec)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		back, err := decodeRecord(b[:len(b)-1])
		if err != nil {
			t.Fatalf("decode %q: %v", b, err)
		}
		if back.Message != rec.Message {
			t.Fatalf("message changed in round trip: %q -> %q", rec.Message, back.Message)
		}
		_ = FormatText(rec, true, 10)
	})
}
