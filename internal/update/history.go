package update

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Outcomes of an update or rollback.
const (
	OutcomeOK         = "ok"          // the new version runs and passed its health checks
	OutcomeRolledBack = "rolled-back" // it failed them; the previous version runs again
	OutcomeFailed     = "failed"      // it failed before anything changed, or the rollback failed too
)

// Phase is one named step of an update, as it went.
type Phase struct {
	Name       string `json:"name"`
	Status     string `json:"status"` // "ok", "failed", "skipped"
	Detail     string `json:"detail,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// Ref names a version in the history.
type Ref struct {
	ID      string `json:"id"`
	Version string `json:"version,omitempty"`
}

// Entry is one update or rollback.
type Entry struct {
	ID     string    `json:"id"`
	Time   time.Time `json:"time"`
	Action string    `json:"action"` // "update" or "rollback"
	From   Ref       `json:"from"`
	To     Ref       `json:"to"`
	// Outcome is OutcomeOK, OutcomeRolledBack or OutcomeFailed.
	Outcome string  `json:"outcome"`
	Reason  string  `json:"reason,omitempty"`
	Phases  []Phase `json:"phases"`
	// Agents is how many agents ran before and were checked after.
	Agents int `json:"agents"`
	// Mode is how the daemon was restarted: "exec" or "systemd".
	Mode string `json:"mode,omitempty"`
}

// History is the file of entries (var/lib/cortex/ops/updates.json).
type History struct{ Path string }

// Load returns the entries, oldest first.
func (h History) Load() ([]Entry, error) {
	data, err := os.ReadFile(h.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Entry
	return out, json.Unmarshal(data, &out)
}

// Append adds e (written through a temporary file, root's only).
func (h History) Append(e Entry) error {
	all, err := h.Load()
	if err != nil {
		return err
	}
	all = append(all, e)
	data, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(h.Path), 0o700); err != nil {
		return err
	}
	tmp := h.Path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, h.Path)
}

// Previous is the version to roll back to from current: the From of the
// latest successful entry that went to current.
func Previous(entries []Entry, current string) (Ref, bool) {
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.Outcome == OutcomeOK && e.To.ID == current && e.From.ID != "" {
			return e.From, true
		}
	}
	return Ref{}, false
}
