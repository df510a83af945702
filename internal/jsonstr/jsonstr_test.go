package jsonstr

import (
	"encoding/json"
	"testing"
)

func TestAppend(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\" back\\slash", "\n\r\t\x00\x1f\b\f\x7f", "<a href='x'>&</a>", "é 中 🙂", "\u2028\u2029", "bad \xff\xfe utf8"} {
		want, _ := json.Marshal(s)
		if got := string(Append([]byte("x"), s)); got != "x"+string(want) {
			t.Errorf("%q: got %s want x%s", s, got, want)
		}
	}
}

// FuzzAppend checks the hand-written encoder against encoding/json for any
// input.
func FuzzAppend(f *testing.F) {
	f.Add("hello \"world\"\n")
	f.Add("\xff<\u2028>")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := Append(nil, s); string(got) != string(want) {
			t.Fatalf("%q: got %s want %s", s, got, want)
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	s := "a typical log line, with \"quotes\" and <tags> — and some UTF-8"
	buf := make([]byte, 0, 256)
	for b.Loop() {
		buf = Append(buf[:0], s)
	}
}
