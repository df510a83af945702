package audit

import (
	"bytes"
	"slices"
	"time"
)

// Filter selects entries for List.
type Filter struct {
	// Since and Until bound the entries' times (zero: unbounded).
	Since, Until time.Time
	// Identity matches an API entry's identity exactly (key:ci, uid:1000).
	Identity string
	// Project matches an API or event entry's project.
	Project string
	// Kinds selects entry kinds; empty means api, event and notice (not
	// the checkpoints and segment heads).
	Kinds []Kind
	// Limit keeps the newest Limit matches (0: all).
	Limit int
}

func (f Filter) match(e *Entry) bool {
	kinds := f.Kinds
	if len(kinds) == 0 {
		kinds = []Kind{KindAPI, KindEvent, KindNotice}
	}
	if !slices.Contains(kinds, e.Kind) {
		return false
	}
	if !f.Since.IsZero() && e.Time.Before(f.Since) || !f.Until.IsZero() && e.Time.After(f.Until) {
		return false
	}
	if f.Identity != "" && (e.API == nil || e.API.Identity != f.Identity) {
		return false
	}
	if f.Project != "" {
		switch {
		case e.API != nil && e.API.Project == f.Project:
		case e.Event != nil && e.Event.Project == f.Project:
		default:
			return false
		}
	}
	return true
}

// List returns the entries f selects, oldest first, reading segments
// from the newest back until Limit matches are found or the entries are
// older than Since. Lines that do not parse are skipped: List reads,
// Verify checks.
func (l *Log) List(f Filter) ([]Entry, error) {
	segs, err := l.Segments()
	if err != nil {
		return nil, err
	}
	var out []Entry // newest first while collecting
	for i := len(segs) - 1; i >= 0; i-- {
		data, err := l.ReadFile(segs[i].Name)
		if err != nil {
			return nil, err
		}
		lines := bytes.Split(data, []byte("\n"))
		older := false
		for j := len(lines) - 1; j >= 0; j-- {
			if len(lines[j]) == 0 {
				continue
			}
			e, _, err := parseLine(lines[j])
			if err != nil {
				continue
			}
			if !f.Since.IsZero() && e.Time.Before(f.Since) {
				older = true
			}
			if f.match(&e) {
				out = append(out, e)
				if f.Limit > 0 && len(out) >= f.Limit {
					slices.Reverse(out)
					return out, nil
				}
			}
		}
		if older {
			break
		}
	}
	slices.Reverse(out)
	return out, nil
}
