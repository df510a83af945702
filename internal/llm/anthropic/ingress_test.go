package anthropic

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/cortexrt/cortex/internal/llm/canon"
)

// The hand-rendered text deltas equal what encoding/json gives.
func TestAnthropicTextChunkRendering(t *testing.T) {
	for _, text := range []string{"hello", "quote \" <tag> \n é"} {
		rec := httptest.NewRecorder()
		a := NewStreamWriter(rec)
		a.Event(canon.Event{Kind: canon.EvStart, ID: "msg_1", Model: "m"})
		a.Event(canon.Event{Kind: canon.EvText, Text: "x"})
		start := rec.Body.Len()
		a.Event(canon.Event{Kind: canon.EvText, Text: text})
		ev, err := canon.NewSSEReader(bytes.NewReader(rec.Body.Bytes()[start:])).Next()
		if err != nil {
			t.Fatal(err)
		}
		var gotMap, wantMap map[string]any
		json.Unmarshal(ev.Data, &gotMap)
		wb, _ := json.Marshal(map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]string{"type": "text_delta", "text": text}})
		json.Unmarshal(wb, &wantMap)
		if ev.Event != "content_block_delta" || !reflect.DeepEqual(gotMap, wantMap) {
			t.Errorf("anthropic delta %s: %s", ev.Event, ev.Data)
		}
	}
}
