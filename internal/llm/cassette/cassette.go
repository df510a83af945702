// Package cassette is the file format of LLM cassettes: the answers a
// project's LLM calls got, recorded with their timing (cortex run
// --llm-record) and given again without any provider (--llm-replay, the
// manifest's llm.replay). One file per request, <Key>.json, keyed like
// the gateway's response cache. The gateway (internal/llm) records and
// replays; the CLI reads and writes directories of these files. This
// package does no I/O beyond ReadDir.
package cassette

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/llm/canon"
)

// Version is the version of the cassette file format.
const Version = 1

// File is one cassette file, <Key>.json: the recorded answers to
// one request, keyed like the response cache (Key).
type File struct {
	Version int    `json:"version"`
	Key     string `json:"key"`
	Alias   string `json:"alias"`
	// Request is the canonical request (secrets removed), for people.
	Request json.RawMessage `json:"request"`
	// Interactions are the answers in the order they were given; a replay
	// gives them in that order, the last one again once all were given.
	Interactions []Interaction `json:"interactions"`
}

// Interaction is one recorded answer.
type Interaction struct {
	// Stream: the request asked for a stream.
	Stream   bool            `json:"stream"`
	Provider string          `json:"provider"`
	Response *canon.Response `json:"response"`
	// Events are the answer's events with when each came, in
	// milliseconds after the gateway took the request.
	Events []TimedEvent `json:"events"`
}

// TimedEvent is a stream event and its time.
type TimedEvent struct {
	AtMs float64 `json:"at_ms"`
	WireEvent
}

// WireEvent is a canon.Event as a cassette file holds it.
type WireEvent struct {
	Kind         string             `json:"kind"`
	ID           string             `json:"id,omitempty"`
	Model        string             `json:"model,omitempty"`
	Text         string             `json:"text,omitempty"`
	Index        int                `json:"index,omitempty"`
	ToolID       string             `json:"tool_id,omitempty"`
	ToolName     string             `json:"tool_name,omitempty"`
	Finish       canon.FinishReason `json:"finish,omitempty"`
	Native       string             `json:"native,omitempty"`
	NativeFamily string             `json:"native_family,omitempty"`
	StopSequence string             `json:"stop_sequence,omitempty"`
	Usage        *canon.Usage       `json:"usage,omitempty"`
}

var eventKinds = map[canon.EventKind]string{
	canon.EvStart: "start", canon.EvText: "text", canon.EvToolStart: "tool_start", canon.EvToolArgs: "tool_args",
	canon.EvToolEnd: "tool_end", canon.EvFinish: "finish", canon.EvUsage: "usage",
}

// ToWire is an event in its file form.
func ToWire(ev canon.Event) WireEvent {
	w := WireEvent{Kind: eventKinds[ev.Kind], ID: ev.ID, Model: ev.Model, Text: ev.Text, Index: ev.Index, ToolID: ev.ToolID,
		ToolName: ev.ToolName, Finish: ev.Finish, Native: ev.Native, NativeFamily: ev.NativeFamily, StopSequence: ev.StopSequence}
	if ev.Usage != (canon.Usage{}) {
		u := ev.Usage
		w.Usage = &u
	}
	return w
}

// Event is the canonical event of w; ok is false for an unknown kind.
func (w WireEvent) Event() (canon.Event, bool) {
	ev := canon.Event{ID: w.ID, Model: w.Model, Text: w.Text, Index: w.Index, ToolID: w.ToolID, ToolName: w.ToolName,
		Finish: w.Finish, Native: w.Native, NativeFamily: w.NativeFamily, StopSequence: w.StopSequence}
	if w.Usage != nil {
		ev.Usage = *w.Usage
	}
	for k, name := range eventKinds {
		if name == w.Kind {
			ev.Kind = k
			return ev, true
		}
	}
	return ev, false
}

// Key is the key of a request: the SHA-256 of the canonical request
// (alias, messages, parameters) as the response cache's key but without
// the alias's targets, so a replay needs no configuration of the alias.
// The stream flag and the wire format are not part of it. redact (may be
// nil) is applied to the request's JSON text first: secrets in a request
// (an agent's token, which differs from run to run) neither enter a
// cassette nor change its key.
func Key(req *canon.Request, redact func(string) string) string {
	k := *req
	if len(k.Extra) == 0 {
		k.Family = ""
	}
	b, _ := json.Marshal(struct {
		V   int            `json:"v"`
		Req *canon.Request `json:"req"`
	}{Version, &k})
	if redact != nil {
		b = []byte(redact(string(b)))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Parse decodes one cassette file; name is its file name
// (<key>.json), for errors and the key check.
func Parse(name string, data []byte) (*File, error) {
	var c File
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, errdefs.New(errdefs.InvalidArgument, "cassette %s: %v", name, err)
	}
	switch {
	case c.Version != Version:
		return nil, errdefs.New(errdefs.InvalidArgument, "cassette %s: version %d is not supported (this cortex reads %d); record it again", name, c.Version, Version)
	case c.Key+".json" != filepath.Base(name) || len(c.Key) != 64:
		return nil, errdefs.New(errdefs.InvalidArgument, "cassette %s: its key %q does not match its name; cassette files are <key>.json", name, c.Key)
	case len(c.Interactions) == 0:
		return nil, errdefs.New(errdefs.InvalidArgument, "cassette %s: no interactions", name)
	}
	for i, it := range c.Interactions {
		if it.Response == nil {
			return nil, errdefs.New(errdefs.InvalidArgument, "cassette %s: interaction %d has no response", name, i)
		}
		for _, te := range it.Events {
			if _, ok := te.Event(); !ok {
				return nil, errdefs.New(errdefs.InvalidArgument, "cassette %s: interaction %d: unknown event kind %q", name, i, te.Kind)
			}
		}
	}
	return &c, nil
}

// ReadDir reads every <key>.json of dir. Other files are errors,
// so a misplaced directory is noticed.
func ReadDir(dir string) (map[string][]byte, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errdefs.New(errdefs.InvalidArgument, "cassette directory %s does not exist", dir)
		}
		return nil, err
	}
	files := map[string][]byte{}
	for _, e := range ents {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if _, err := Parse(filepath.Join(dir, e.Name()), b); err != nil {
			return nil, err
		}
		files[e.Name()] = b
	}
	return files, nil
}

// Marshal returns a file's bytes: indented JSON, the same for the same
// content.
func Marshal(f *File) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
