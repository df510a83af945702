package llm

import (
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"testing"
)

// The hand-rendered text chunks equal what the reflective renderers give.
func TestTextChunkRendering(t *testing.T) {
	for _, text := range []string{"hello", "quote \" <tag> \n é"} {
		rec := httptest.NewRecorder()
		s := newOpenAIStream(rec, false)
		s.event(Event{Kind: EvStart, ID: "chatcmpl-1", Model: "m<1>"})
		start := rec.Body.Len()
		s.event(Event{Kind: EvText, Text: text})
		got := rec.Body.String()[start:]
		want, _ := json.Marshal(oaCompletionOut{ID: "chatcmpl-1", Object: "chat.completion.chunk", Created: s.created, Model: "m<1>",
			Choices: []oaChoiceOut{{Delta: &oaDeltaOut{Content: &text}}}})
		if got != "data: "+string(want)+"\n\n" {
			t.Errorf("openai chunk\n got %s\nwant %s", got, want)
		}

		rec = httptest.NewRecorder()
		a := newAnthropicStream(rec)
		a.event(Event{Kind: EvStart, ID: "msg_1", Model: "m"})
		a.event(Event{Kind: EvText, Text: "x"})
		start = rec.Body.Len()
		a.event(Event{Kind: EvText, Text: text})
		evs := sseEvents(t, []byte(rec.Body.String()[start:]))
		var gotMap, wantMap map[string]any
		json.Unmarshal(evs[0].Data, &gotMap)
		wb, _ := json.Marshal(map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]string{"type": "text_delta", "text": text}})
		json.Unmarshal(wb, &wantMap)
		if evs[0].Event != "content_block_delta" || !reflect.DeepEqual(gotMap, wantMap) {
			t.Errorf("anthropic delta %s: %s", evs[0].Event, evs[0].Data)
		}
	}
}
