package logs

import (
	"time"
)

// Streams a record can come from.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
	// StreamSystem marks lifecycle lines written by the supervisor.
	StreamSystem = "system"
)

// Normalised levels.
const (
	LevelDebug = "debug"
	LevelInfo  = "info"
	LevelWarn  = "warn"
	LevelError = "error"
)

// Defaults used when Options leaves a field zero.
const (
	DefaultSegmentSize = 16 << 20
	DefaultSegments    = 4
	DefaultMaxLine     = 256 << 10
)

// Record is one line of agent output (or one supervisor lifecycle line).
type Record struct {
	Time    time.Time `json:"time"`    // collection time (UTC)
	Seq     uint64    `json:"seq"`     // per agent, strictly increasing across runs and daemon restarts
	Project string    `json:"project"` //
	Agent   string    `json:"agent"`   //
	Run     int       `json:"run"`     // restart count of the agent (0 = first run)
	Stream  string    `json:"stream"`  // StreamStdout, StreamStderr or StreamSystem
	Level   string    `json:"level"`   // LevelDebug, LevelInfo, LevelWarn or LevelError
	Message string    `json:"message"` // valid UTF-8; may hold control characters except in Wrapped records
	// Fields are the other keys of a JSON line. Numbers are json.Number so
	// they round-trip exactly. Records handed to readers may share this map:
	// treat it as read-only.
	Fields    map[string]any `json:"fields,omitempty"`
	Wrapped   bool           `json:"wrapped,omitempty"`   // strict mode: a non-JSON line wrapped and escaped
	Truncated bool           `json:"truncated,omitempty"` // part of a line longer than MaxLine
}

// Meta says where the lines given to Collect come from.
type Meta struct {
	Project string
	Agent   string
	Run     int
	Stream  string // StreamStdout or StreamStderr ("" = stdout); StreamSystem is allowed too
	Strict  bool   // security.logging: strict
}

// Options configure a Store.
type Options struct {
	Dir         string // root of the store, e.g. config.Paths.LogDir
	SegmentSize int64  // rotate a segment when the next line would pass this size (0 = DefaultSegmentSize)
	Segments    int    // segment files kept per agent, oldest dropped (0 = DefaultSegments)
	MaxLine     int    // longest line stored as one record; longer lines are split (0 = DefaultMaxLine)
}

// Query selects records for Read.
type Query struct {
	Project string
	Agent   string    // "" = all agents of Project, including agents that appear while following
	Tail    int       // last N records per agent (0 = all), counted after Since and AfterSeq
	Since   time.Time // zero = no bound; records with an earlier Time are skipped
	Follow  bool      // after the stored records, stream new ones until ctx is done
	// AfterSeq is an optional resume point per agent name: records with
	// Seq <= AfterSeq[agent] are skipped (for reconnecting followers).
	AfterSeq map[string]uint64
}

// AgentStats describe what the store holds for one agent.
type AgentStats struct {
	Records  uint64 `json:"records"`   // records in the kept segments (LastSeq-FirstSeq+1)
	Bytes    int64  `json:"bytes"`     // size of the kept segment files
	Segments int    `json:"segments"`  // segment files kept
	FirstSeq uint64 `json:"first_seq"` // oldest kept record (0 if none)
	LastSeq  uint64 `json:"last_seq"`  // newest record (0 if none)
}
