package canon

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func readAllEvents(r io.Reader) ([]SSEEvent, error) {
	s := NewSSEReader(r)
	var out []SSEEvent
	for {
		ev, err := s.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
}

func TestSSEReader(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []SSEEvent
	}{
		{"openai", "data: {\"a\":1}\n\ndata: [DONE]\n\n", []SSEEvent{{Data: []byte(`{"a":1}`)}, {Data: []byte("[DONE]")}}},
		{"typed", "event: message_start\ndata: {}\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n", []SSEEvent{{Event: "message_start", Data: []byte("{}")}, {Event: "ping", Data: []byte(`{"type": "ping"}`)}}},
		{"crlf", "data: x\r\n\r\ndata: y\r\n\r\n", []SSEEvent{{Data: []byte("x")}, {Data: []byte("y")}}},
		{"multi-line data", "data: a\ndata: b\n\n", []SSEEvent{{Data: []byte("a\nb")}}},
		{"no space after colon", "data:x\n\n", []SSEEvent{{Data: []byte("x")}}},
		{"comments and ids ignored", ": keep-alive\nid: 7\nretry: 100\ndata: x\n\n", []SSEEvent{{Data: []byte("x")}}},
		{"event without data is dropped", "event: nothing\n\ndata: x\n\n", []SSEEvent{{Data: []byte("x")}}},
		{"unterminated last event", "data: x\n\ndata: y", []SSEEvent{{Data: []byte("x")}, {Data: []byte("y")}}},
		{"empty data line", "data:\n\n", []SSEEvent{{Data: []byte("")}}},
		{"blank lines between", "\n\n\ndata: x\n\n\n", []SSEEvent{{Data: []byte("x")}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				got, err := readAllEvents(r)
				if err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(tc.want, got, cmp.AllowUnexported(SSEEvent{}), cmpopts.EquateEmpty()); d != "" {
					t.Errorf("(-want +got):\n%s", d)
				}
			}
		})
	}
}

func TestSSELineLimit(t *testing.T) {
	in := "data: " + strings.Repeat("x", MaxSSELine+10) + "\n\n"
	if _, err := readAllEvents(strings.NewReader(in)); err == nil {
		t.Fatal("an oversized line was accepted")
	}
}

func TestSSERoundTrip(t *testing.T) {
	evs := []SSEEvent{{Event: "a", Data: []byte(`{"x":"y"}`)}, {Data: []byte("line1\nline2")}, {Data: []byte("")}}
	var buf []byte
	for _, ev := range evs {
		buf = AppendSSE(buf, ev.Event, ev.Data)
	}
	got, err := readAllEvents(bytes.NewReader(buf))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(evs, got, cmp.AllowUnexported(SSEEvent{}), cmpopts.EquateEmpty()); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// FuzzSSE checks the reader never panics and that what appendSSE writes
// reads back unchanged, whatever the event name and data.
func FuzzSSE(f *testing.F) {
	f.Add([]byte("data: {\"a\":1}\n\ndata: [DONE]\n\n"), "ev", []byte("x\ny"))
	f.Add([]byte("event: x\r\ndata:\r\n\r\n:c\n"), "", []byte(""))
	f.Add([]byte("data"), "message_start", []byte("{}"))
	f.Fuzz(func(t *testing.T, raw []byte, event string, data []byte) {
		_, _ = readAllEvents(bytes.NewReader(raw))
		if strings.ContainsAny(event, "\r\n") || bytes.ContainsRune(data, '\r') {
			return // not representable in one SSE field
		}
		wire := AppendSSE(nil, event, data)
		got, err := readAllEvents(bytes.NewReader(wire))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Event != event || !bytes.Equal(got[0].Data, data) {
			t.Fatalf("round trip of (%q, %q) gave %+v from %q", event, data, got, wire)
		}
	})
}
