package cassette

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/llm/canon"
)

// TestCassetteFiles: files whose key is not their name, or that hold no
// answer, are refused with the file named.
func TestCassetteFiles(t *testing.T) {
	req := &canon.Request{Model: "oa", Messages: []canon.Message{{Role: "user", Parts: []canon.Part{{Type: canon.PartText, Text: "hi"}}}}}
	key := Key(req, nil)
	good := &File{Version: Version, Key: key, Alias: "oa", Request: json.RawMessage(`{}`),
		Interactions: []Interaction{{Response: &canon.Response{ID: "x"}, Events: []TimedEvent{{WireEvent: ToWire(canon.Event{Kind: canon.EvText, Text: "hi"})}}}}}
	b, _ := Marshal(good)
	if _, err := Parse(key+".json", b); err != nil {
		t.Fatalf("good file: %v", err)
	}
	for name, tc := range map[string]struct {
		file string
		data string
		want string
	}{
		"renamed":  {"other.json", string(b), "does not match its name"},
		"empty":    {key + ".json", strings.Replace(string(b), `"interactions": [`, `"interactions": [], "x": [`, 1), "unknown field"},
		"version":  {key + ".json", strings.Replace(string(b), `"version": 1`, `"version": 9`, 1), "version 9 is not supported"},
		"bad-kind": {key + ".json", strings.Replace(string(b), `"kind": "text"`, `"kind": "beep"`, 1), `unknown event kind "beep"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(tc.file, []byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.file) {
				t.Errorf("err = %v, want %q naming %s", err, tc.want, tc.file)
			}
		})
	}
}

// FuzzParse: no input makes Parse panic, and what it accepts marshals
// and parses again to the same file.
func FuzzParse(f *testing.F) {
	req := &canon.Request{Model: "oa", Messages: []canon.Message{{Role: "user", Parts: []canon.Part{{Type: canon.PartText, Text: "hi"}}}}}
	key := Key(req, nil)
	good := &File{Version: Version, Key: key, Alias: "oa", Request: json.RawMessage(`{}`),
		Interactions: []Interaction{{Stream: true, Response: &canon.Response{ID: "x"}, Events: []TimedEvent{{AtMs: 1.5, WireEvent: ToWire(canon.Event{Kind: canon.EvText, Text: "hi"})}}}}}
	b, _ := Marshal(good)
	f.Add(b)
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(key+".json", data)
		if err != nil {
			return
		}
		again, err := Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(key+".json", again); err != nil {
			t.Fatalf("a parsed file does not parse again: %v\n%s", err, again)
		}
	})
}
