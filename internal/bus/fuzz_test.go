package bus

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzReadLine: the socket line reader returns every line within the
// limit intact, reports longer ones as over (with their head), and never
// loses sync with the stream.
func FuzzReadLine(f *testing.F) {
	f.Add([]byte("{\"op\":\"ping\"}\n{\"op\":\"x\"}\r\n"), 16)
	f.Add([]byte(strings.Repeat("a", 5000)+"\nshort\n"), 100)
	f.Add([]byte("no newline at end"), 4)
	f.Fuzz(func(t *testing.T, data []byte, limit int) {
		if limit < 1 || limit > 1<<16 {
			return
		}
		r := bufio.NewReaderSize(bytes.NewReader(data), 16)
		lines := bytes.SplitAfter(data, []byte("\n"))
		for i, want := range lines {
			if !bytes.HasSuffix(want, []byte("\n")) {
				break // an unterminated tail is not a line
			}
			line, over, err := readLine(r, limit)
			if err != nil {
				t.Fatalf("line %d: %v", i, err)
			}
			body := trimEOL(want)
			switch {
			case len(body) > limit:
				if line != nil || over == nil || !bytes.HasPrefix(want, over) {
					t.Fatalf("line %d (%d bytes, limit %d): line=%q over=%q", i, len(want), limit, line, over)
				}
			default:
				if over != nil || !bytes.Equal(line, body) {
					t.Fatalf("line %d: got %q over %q, want %q", i, line, over, body)
				}
			}
		}
	})
}

// FuzzPayload: whatever a publisher sends, an accepted payload is one
// line of valid JSON, an object, within the limit.
func FuzzPayload(f *testing.F) {
	f.Add([]byte(`{"a": 1}`), false)
	f.Add([]byte("{\n\"a\":\r\n[1,2]}"), false)
	f.Add([]byte(`[1]`), true)
	f.Add([]byte(`{"x":"\u2028"}`), false)
	s := &Server{cfg: Config{MaxPayload: 256}.WithDefaults()}
	f.Fuzz(func(t *testing.T, p []byte, trusted bool) {
		if trusted && !json.Valid(p) {
			return // trusted input always comes from a JSON decoder
		}
		out, err := s.checkPayload(p, trusted)
		if err != nil {
			return
		}
		if !json.Valid(out) || out[0] != '{' || bytes.ContainsAny(out, "\r\n") || int64(len(out)) > s.cfg.MaxPayload {
			t.Fatalf("accepted %q as %q", p, out)
		}
	})
}

// FuzzNames: channel validation, subject escaping and ACL matching agree.
func FuzzNames(f *testing.F) {
	f.Add("proj", "a.b-c_d")
	f.Add("proj with space/ü", "x")
	f.Add("~41", "a..b")
	f.Fuzz(func(t *testing.T, project, channel string) {
		if got, ok := unescapeToken(escapeToken(project)); !ok || got != project {
			t.Fatalf("escape roundtrip %q -> %q -> %q", project, escapeToken(project), got)
		}
		if strings.ContainsAny(escapeToken(project), ".*> \t?[]") {
			t.Fatalf("escaped %q contains subject/glob syntax", escapeToken(project))
		}
		if ValidChannel(channel) != nil {
			return
		}
		p, c, ok := splitSubject(subject(project, channel))
		if !ok || p != project || c != channel {
			t.Fatalf("subject roundtrip (%q,%q) -> (%q,%q,%v)", project, channel, p, c, ok)
		}
		if !allowed(nil, channel) || allowed([]string{}, channel) || !allowed([]string{channel}, channel) || !allowed([]string{">"}, channel) {
			t.Fatalf("ACL basics fail for %q", channel)
		}
	})
}
