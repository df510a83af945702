package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
)

func hook(t *testing.T, dir, event, name, script string, mode os.FileMode) string {
	t.Helper()
	d := filepath.Join(dir, event+".d")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(d, name)
	if err := os.WriteFile(p, []byte(script), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGateRefuses(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(t.TempDir(), "seen")
	hook(t, dir, PreRun, "10-record", "#!/bin/sh\ncat > "+out+"\n", 0o755)
	hook(t, dir, PreRun, "20-policy", `#!/bin/sh
if grep -q '"project":"forbidden"'; then
  echo "checking policy"
  echo "project forbidden is not allowed on this host" >&2
  exit 1
fi
`, 0o755)
	hook(t, dir, PreRun, "30-never", "#!/bin/sh\ntouch "+out+".30\n", 0o755)
	var logb bytes.Buffer
	r := New(dir, 5*time.Second, slog.New(slog.NewTextHandler(&logb, nil)), []string{"PATH=/usr/bin:/bin"})

	res, err := r.Gate(context.Background(), PreRun, map[string]any{"project": "allowed", "agents": []string{"a"}})
	if err != nil || len(res) != 3 {
		t.Fatalf("allowed: %v %+v", err, res)
	}
	var got map[string]any
	b, _ := os.ReadFile(out)
	if err := json.Unmarshal(b, &got); err != nil || got["project"] != "allowed" || got["event"] != PreRun || got["time"] == nil {
		t.Fatalf("stdin %q: %v", b, err)
	}
	_ = os.Remove(out + ".30")

	res, err = r.Gate(context.Background(), PreRun, map[string]any{"project": "forbidden"})
	if err == nil || !errdefs.IsPermissionDenied(err) {
		t.Fatalf("forbidden: %v", err)
	}
	if want := "pre-run hook 20-policy refused: project forbidden is not allowed on this host"; err.Error() != want {
		t.Errorf("message %q, want %q", err.Error(), want)
	}
	if len(res) != 2 {
		t.Errorf("hooks after the refusing one ran: %+v", res)
	}
	if _, err := os.Stat(out + ".30"); err == nil {
		t.Error("30-never ran after a refusal")
	}
	if !strings.Contains(logb.String(), "project forbidden is not allowed") || !strings.Contains(logb.String(), "hook=20-policy") {
		t.Errorf("hook output not in the log:\n%s", logb.String())
	}
}

// TestUntrustedAndTimeout: a hook writable by others is never run (and a
// gate refuses); one that hangs is killed at the timeout.
func TestUntrustedAndTimeout(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(t.TempDir(), "ran")
	hook(t, dir, PreRun, "open", "#!/bin/sh\ntouch "+marker+"\n", 0o757)
	r := New(dir, 500*time.Millisecond, nil, nil)
	_, err := r.Gate(context.Background(), PreRun, nil)
	if !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "writable by every user") {
		t.Fatalf("untrusted: %v", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("an untrusted hook ran")
	}

	hook(t, dir, AgentExit, "slow", "#!/bin/sh\nsleep 1000\n", 0o755)
	hook(t, dir, AgentExit, "z-after", "#!/bin/sh\necho done\n", 0o755)
	res := r.Run(context.Background(), AgentExit, map[string]any{"project": "p"})
	if len(res) != 2 || res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "did not finish within 500ms") || res[1].Err != nil || strings.TrimSpace(res[1].Output) != "done" {
		t.Fatalf("timeout: %+v", res)
	}
	if r.Hooks(PostRun) != nil || len(r.Run(context.Background(), PostRun, nil)) != 0 {
		t.Error("hooks for an event with no directory")
	}
}
