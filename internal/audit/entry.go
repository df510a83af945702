package audit

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
)

// Version is the encoding version of the entries this package writes
// (the "v" field). A reader refuses versions it does not know.
const Version = 1

// Kind says what an entry records.
type Kind string

const (
	// KindAPI: one API request's decision or outcome (Entry.API).
	KindAPI Kind = "api"
	// KindEvent: a lifecycle event from the daemon's event stream, or a
	// summary of many denials (Entry.Event).
	KindEvent Kind = "event"
	// KindCheckpoint: a signed checkpoint of the tree before this entry
	// (Entry.Checkpoint).
	KindCheckpoint Kind = "checkpoint"
	// KindSegment: the first entry of every segment file: the tree's
	// compact range before it (Entry.Segment) and a signed checkpoint of
	// that tree (Entry.Checkpoint), so each file verifies on its own.
	KindSegment Kind = "segment"
	// KindNotice: something the log itself did (a torn tail removed, a
	// damaged segment closed, events dropped) (Entry.Notice).
	KindNotice Kind = "notice"
)

// Entry is one line of a segment file and one leaf of the log's Merkle
// tree. Its canonical encoding is encoding/json's of this struct with
// Root left out (fields in this order, no spaces, HTML characters
// escaped as \u003c); that is the leaf. The line written is the leaf
// with ,"root":"<base64>" inserted before its closing brace: the tree
// head (RFC 6962) after this entry, which lets a verifier name the first
// entry that does not hash to what was recorded.
type Entry struct {
	V     int       `json:"v"`
	Index uint64    `json:"i"`
	Time  time.Time `json:"t"`
	Kind  Kind      `json:"kind"`

	API        *APIRecord   `json:"api,omitempty"`
	Event      *EventRecord `json:"event,omitempty"`
	Segment    *SegmentHead `json:"segment,omitempty"`
	Checkpoint string       `json:"checkpoint,omitempty"`
	Notice     string       `json:"notice,omitempty"`

	// Root is the tree head after this entry; not part of the leaf.
	Root []byte `json:"root,omitempty"`
}

// APIRecord is one API request. A request that changes something, or
// opens a stream, gets two entries: Phase "begin" once it is allowed and
// before its handler runs, "end" with the status before the answer is
// sent. A read gets one ("done"), written before its answer is sent; a
// refused request one ("refused").
type APIRecord struct {
	RequestID string `json:"request_id"`
	Phase     string `json:"phase"`
	// Identity is who asked: uid:N (a local user), key:NAME, cert:NAME,
	// or anonymous (failed authentication).
	Identity string `json:"identity"`
	// Auth is how: peer (SO_PEERCRED), key or cert; Credential names the
	// key id or certificate serial.
	Auth       string `json:"auth,omitempty"`
	Credential string `json:"credential,omitempty"`
	Role       string `json:"role,omitempty"`
	Remote     string `json:"remote,omitempty"`
	Method     string `json:"method"`
	// Route is the API pattern matched ("POST /v1/agents/{project}/{agent}/kill").
	Route   string `json:"route,omitempty"`
	Path    string `json:"path"`
	Project string `json:"project,omitempty"`
	Agent   string `json:"agent,omitempty"`
	// Outcome: allowed, ok, error, denied (403), hidden (404 for a
	// project the identity may not see), unauthenticated (401), limited
	// (429), audit-failed.
	Outcome string `json:"outcome"`
	Status  int    `json:"status,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// Count > 1: this entry stands for Count requests (rate-limited ones
	// are summarised per identity).
	Count      int   `json:"count,omitempty"`
	DurationUS int64 `json:"duration_us,omitempty"`
}

// EventRecord is one event of the daemon's stream, or a summary of
// Count denials of one kind between First and Last.
type EventRecord struct {
	Type    string          `json:"type"`
	Seq     uint64          `json:"seq,omitempty"`
	Project string          `json:"project,omitempty"`
	Agent   string          `json:"agent,omitempty"`
	Run     int             `json:"run,omitempty"`
	Count   int             `json:"count,omitempty"`
	First   time.Time       `json:"first,omitzero"`
	Last    time.Time       `json:"last,omitzero"`
	Detail  json.RawMessage `json:"detail,omitempty"`
}

// SegmentHead opens a segment file: Seq counts files from 1; Range is
// the compact range (RFC 6962 subtree hashes, left to right) of the tree
// of the Index entries before it.
type SegmentHead struct {
	Seq   int      `json:"seq"`
	Range [][]byte `json:"range"`
}

// hasher is the tree's: RFC 6962 over SHA-256.
var hasher = rfc6962.DefaultHasher

// leaf returns e's canonical encoding without its root.
func (e Entry) leaf() ([]byte, error) {
	e.Root = nil
	return json.Marshal(e)
}

// line joins a leaf and the root after it into the line written (with
// its newline).
func line(leaf, root []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(leaf) + 60)
	b.Write(leaf[:len(leaf)-1])
	b.WriteString(`,"root":"`)
	b.WriteString(base64.StdEncoding.EncodeToString(root))
	b.WriteString("\"}\n")
	return b.Bytes()
}

// parseLine decodes one line (without its newline) and checks that it is
// canonical: exactly the bytes encoding its decoded entry would give. It
// returns the entry (Root set) and its leaf.
func parseLine(l []byte) (Entry, []byte, error) {
	var e Entry
	dec := json.NewDecoder(bytes.NewReader(l))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, nil, fmt.Errorf("not a valid entry: %v", err)
	}
	if dec.More() {
		return e, nil, fmt.Errorf("not a valid entry: data after the object")
	}
	if e.V != Version {
		return e, nil, fmt.Errorf("encoding version %d is not supported (this build reads %d)", e.V, Version)
	}
	if len(e.Root) != hasher.Size() {
		return e, nil, fmt.Errorf("root is %d bytes, want %d", len(e.Root), hasher.Size())
	}
	leaf, err := e.leaf()
	if err != nil {
		return e, nil, err
	}
	if want := line(leaf, e.Root); !bytes.Equal(want[:len(want)-1], l) {
		return e, nil, fmt.Errorf("not in canonical encoding (the bytes were changed)")
	}
	return e, leaf, nil
}
