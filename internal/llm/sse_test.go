package llm

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

func readAllEvents(r io.Reader) ([]sseEvent, error) {
	s := newSSEReader(r)
	var out []sseEvent
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
		want []sseEvent
	}{
		{"openai", "data: {\"a\":1}\n\ndata: [DONE]\n\n", []sseEvent{{Data: []byte(`{"a":1}`)}, {Data: []byte("[DONE]")}}},
		{"typed", "event: message_start\ndata: {}\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n", []sseEvent{{Event: "message_start", Data: []byte("{}")}, {Event: "ping", Data: []byte(`{"type": "ping"}`)}}},
		{"crlf", "data: x\r\n\r\ndata: y\r\n\r\n", []sseEvent{{Data: []byte("x")}, {Data: []byte("y")}}},
		{"multi-line data", "data: a\ndata: b\n\n", []sseEvent{{Data: []byte("a\nb")}}},
		{"no space after colon", "data:x\n\n", []sseEvent{{Data: []byte("x")}}},
		{"comments and ids ignored", ": keep-alive\nid: 7\nretry: 100\ndata: x\n\n", []sseEvent{{Data: []byte("x")}}},
		{"event without data is dropped", "event: nothing\n\ndata: x\n\n", []sseEvent{{Data: []byte("x")}}},
		{"unterminated last event", "data: x\n\ndata: y", []sseEvent{{Data: []byte("x")}, {Data: []byte("y")}}},
		{"empty data line", "data:\n\n", []sseEvent{{Data: []byte("")}}},
		{"blank lines between", "\n\n\ndata: x\n\n\n", []sseEvent{{Data: []byte("x")}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				got, err := readAllEvents(r)
				if err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(tc.want, got, cmp.AllowUnexported(sseEvent{}), cmpopts.EquateEmpty()); d != "" {
					t.Errorf("(-want +got):\n%s", d)
				}
			}
		})
	}
}

func TestSSELineLimit(t *testing.T) {
	in := "data: " + strings.Repeat("x", maxSSELine+10) + "\n\n"
	if _, err := readAllEvents(strings.NewReader(in)); err == nil {
		t.Fatal("an oversized line was accepted")
	}
}

func TestSSERoundTrip(t *testing.T) {
	evs := []sseEvent{{Event: "a", Data: []byte(`{"x":"y"}`)}, {Data: []byte("line1\nline2")}, {Data: []byte("")}}
	var buf []byte
	for _, ev := range evs {
		buf = appendSSE(buf, ev.Event, ev.Data)
	}
	got, err := readAllEvents(bytes.NewReader(buf))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(evs, got, cmp.AllowUnexported(sseEvent{}), cmpopts.EquateEmpty()); d != "" {
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
		wire := appendSSE(nil, event, data)
		got, err := readAllEvents(bytes.NewReader(wire))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Event != event || !bytes.Equal(got[0].Data, data) {
			t.Fatalf("round trip of (%q, %q) gave %+v from %q", event, data, got, wire)
		}
	})
}

// FuzzParseRequests feeds arbitrary bodies to both ingress parsers and to
// every connector's encoder: they must return an error or a request, never
// panic, and what parses must encode for every provider family or fail
// with a clean error.
func FuzzParseRequests(f *testing.F) {
	for _, b := range []map[string]any{openAIConversation("m", false), anthropicConversation("m", true)} {
		f.Add(mustJSON(b))
	}
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}`))
	f.Add([]byte(`{"model":"m","messages":[{"role":"tool","tool_call_id":"x","content":"y"}],"stop":"s","n":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, parse := range []func([]byte) (*Request, error){parseOpenAIChat, func(b []byte) (*Request, error) { return parseAnthropic(b, nil) }} {
			req, err := parse(body)
			if err != nil {
				var ir *invalidRequest
				if !errors.As(err, &ir) {
					t.Fatalf("parse error of the wrong type: %T %v", err, err)
				}
				continue
			}
			p := &provider{name: "x"}
			_, _ = (&openaiConnector{p: p}).encode("m", req)
			_, _ = anthropicEncode("m", req, 10)
			_, _ = (&geminiConnector{p: p}).encode(req)
			_ = cacheKey(&route{}, req)
		}
		_, _, _ = parseOpenAIEmbed(body)
	})
}
