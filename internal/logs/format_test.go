package logs

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestFormatText(t *testing.T) {
	cases := []struct {
		name  string
		rec   Record
		color bool
		width int
		want  string
	}{
		{"plain", Record{Agent: "web", Message: "hello"}, false, 0, "web | hello"},
		{"padded", Record{Agent: "web", Message: "hello"}, false, 6, "web    | hello"},
		{"fields sorted after message", Record{Agent: "a", Message: "done", Fields: map[string]any{
			"z": json.Number("1.5"), "b": "two words", "c": true, "d": []any{"x"}, "e": "plain",
		}}, false, 0, `a | done b="two words" c=true d=["x"] e=plain z=1.5`},
		{"csi stripped", Record{Agent: "a", Message: "\x1b[31mred\x1b[0m text\x1b[2J"}, false, 0, "a | red text"},
		{"osc title stripped", Record{Agent: "a", Message: "x\x1b]0;pwned\x07y\x1b]8;;http://e\x1b\\link\x1b]8;;\x1b\\"}, false, 0, "a | xylink"},
		{"c1 csi stripped", Record{Agent: "a", Message: "x\u009b2Jy"}, false, 0, "a | xy"},
		{"lone controls escaped", Record{Agent: "a", Message: "bell\x07 cr\rback\x08 del\x7f"}, false, 0, `a | bell\x07 cr\x0dback\x08 del\x7f`},
		{"bidi override escaped", Record{Agent: "a", Message: "abc\u202edef"}, false, 0, `a | abc\u202edef`},
		{"tab kept", Record{Agent: "a", Message: "k:\tv"}, false, 0, "a | k:\tv"},
		{"newline gets own prefix (no spoofing)", Record{Agent: "a", Message: "line1\nother | fake\n"}, false, 0, "a | line1\na | other | fake"},
		{"control chars in field values quoted", Record{Agent: "a", Fields: map[string]any{"k\x1b": "v\x1b[2J"}}, false, 0, `a | "k\x1b"="v\x1b[2J"`},
		{"agent name sanitised", Record{Agent: "a\x07b\x1b[2J", Message: "m"}, false, 0, `a\x07b | m`},
		{"colour", Record{Agent: "web", Message: "hi"}, true, 4, "\x1b[" + AgentColor("web") + "mweb  |\x1b[0m hi"},
		{"invalid utf8 repaired", Record{Agent: "a", Message: "x\xffy"}, false, 0, "a | x\uFFFDy"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := FormatText(tc.rec, tc.color, tc.width); got != tc.want {
				t.Errorf("FormatText =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestAgentColorDeterministic(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range []string{"planner", "worker", "critic", "web", "db", "cache", "queue"} {
		if AgentColor(n) != AgentColor(n) {
			t.Fatalf("colour of %s not stable", n)
		}
		seen[AgentColor(n)] = true
	}
	if len(seen) < 2 {
		t.Errorf("all agents got the same colour")
	}
}

func TestEscapeControls(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain", "plain"},
		{"\x1b[31mred", `\x1b[31mred`},
		{"a\u0085b", `a\u0085b`},
		{"tab\there", `tab\x09here`},
		{"x\xffy", "x\uFFFDy"},
		{"ok é 日本", "ok é 日本"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			if got := escapeControls(tc.in); got != tc.want {
				t.Errorf("escapeControls(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// FuzzFormatText checks that nothing an agent writes reaches the terminal
// as a control character: the only control FormatText emits is "\n"
// between prefixed lines (and tab), and every line starts with the prefix.
func FuzzFormatText(f *testing.F) {
	for _, s := range []string{"hi", "\x1b[2J", "\x1b]0;t\x07", "a\nb", "\u009b31m", "\x1b", "\xc2", "\u202e"} {
		f.Add(s, "k", s)
	}
	f.Fuzz(func(t *testing.T, msg, key, val string) {
		out := FormatText(Record{Agent: "agent", Message: msg, Fields: map[string]any{key: val}}, false, 8)
		if !utf8.ValidString(out) {
			t.Fatalf("output not valid UTF-8: %q", out)
		}
		for _, line := range strings.Split(out, "\n") {
			if !strings.HasPrefix(line, "agent    | ") {
				t.Fatalf("line without prefix: %q (all: %q)", line, out)
			}
			for _, r := range line {
				if r != '\t' && isControl(r) {
					t.Fatalf("control %U reached output: %q", r, out)
				}
			}
		}
	})
}
