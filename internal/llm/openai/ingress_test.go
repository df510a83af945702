package openai

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/cortexrt/cortex/internal/llm/canon"
)

// The hand-rendered text chunks equal what the reflective renderer gives.
func TestOpenAITextChunkRendering(t *testing.T) {
	for _, text := range []string{"hello", "quote \" <tag> \n é"} {
		rec := httptest.NewRecorder()
		s := NewStreamWriter(rec, false)
		s.Event(canon.Event{Kind: canon.EvStart, ID: "chatcmpl-1", Model: "m<1>"})
		start := rec.Body.Len()
		s.Event(canon.Event{Kind: canon.EvText, Text: text})
		got := rec.Body.String()[start:]
		want, _ := json.Marshal(oaCompletionOut{ID: "chatcmpl-1", Object: "chat.completion.chunk", Created: s.created, Model: "m<1>",
			Choices: []oaChoiceOut{{Delta: &oaDeltaOut{Content: &text}}}})
		if got != "data: "+string(want)+"\n\n" {
			t.Errorf("openai chunk\n got %s\nwant %s", got, want)
		}
	}
}
