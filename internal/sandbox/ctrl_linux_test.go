package sandbox

import (
	"encoding/json"
	"testing"
)

// TestCtrlGoLine checks that the pre-encoded "go" line is what the init
// decodes as ctrlGo.
func TestCtrlGoLine(t *testing.T) {
	var m ctrlMsg
	if err := json.Unmarshal(ctrlGoLine, &m); err != nil || m.Type != ctrlGo || ctrlGoLine[len(ctrlGoLine)-1] != '\n' {
		t.Fatalf("ctrlGoLine %q decodes to %+v, %v", ctrlGoLine, m, err)
	}
}
