package doctor

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/api"
)

func plugin(t *testing.T, dir, name, script string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(script), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// TestPlugins: a plugin's checks are reported under its name; one that
// hangs, crashes, prints garbage or is writable by others is a failure of
// that plugin, never of doctor; a hanging plugin's process group is killed.
func TestPlugins(t *testing.T) {
	dir := t.TempDir()
	pids := t.TempDir()
	plugin(t, dir, "good", `#!/bin/sh
cat <<'E'
{"checks": [{"id": "backup.age", "title": "backups are recent", "status": "ok", "evidence": "last backup 2h ago"},
            {"id": "backup.space", "status": "warn", "evidence": "80% full", "fix": {"kind": "auto", "description": "prune"}}]}
E
`, 0o755)
	plugin(t, dir, "array", `#!/bin/sh
echo '[{"id": "one", "status": "fail", "evidence": "'"$CORTEX_ROOT"'"}]'
`, 0o755)
	plugin(t, dir, "sleepy", "#!/bin/sh\necho $$ > "+pids+"/shell\nsleep 1000 &\necho $! > "+pids+"/child\nwait\n", 0o755)
	plugin(t, dir, "garbage", "#!/bin/sh\necho 'all good, trust me'\n", 0o755)
	plugin(t, dir, "crash", "#!/bin/sh\necho 'segfault in module x' >&2\nexit 3\n", 0o755)
	plugin(t, dir, "badstatus", `#!/bin/sh
echo '{"id": "x", "status": "great"}'
`, 0o755)
	plugin(t, dir, "open", "#!/bin/sh\necho '{\"id\":\"x\",\"status\":\"ok\"}'\n", 0o757)
	plugin(t, dir, ".hidden", "#!/bin/sh\nexit 1\n", 0o755)

	checks := Plugins(dir, PluginEnv("/some/root", "/some/root/run/cortex/cortexd.sock"))
	if len(checks) != 7 {
		t.Fatalf("%d plugin checks, want 7 (dotfiles ignored)", len(checks))
	}
	res, err := Run(context.Background(), checks, Options{Timeout: 2 * time.Second, Source: "daemon"})
	if err != nil {
		t.Fatal(err)
	}
	m := byID(res)
	for id, want := range map[string]struct {
		status api.CheckStatus
		text   string
	}{
		"plugin.good":              {api.CheckOK, "reported 2 check(s)"},
		"plugin.good.backup.age":   {api.CheckOK, "last backup 2h ago"},
		"plugin.good.backup.space": {api.CheckWarn, "80% full"},
		"plugin.array.one":         {api.CheckFail, "/some/root"},
		"plugin.sleepy":            {api.CheckFail, "did not"},
		"plugin.garbage":           {api.CheckFail, `printed no doctor JSON`},
		"plugin.crash":             {api.CheckFail, "exit status 3; stderr: segfault in module x"},
		"plugin.badstatus":         {api.CheckFail, `status "great": use ok, warn, fail or skip`},
		"plugin.open":              {api.CheckFail, "writable by every user"},
	} {
		c, ok := m[id]
		if !ok {
			t.Errorf("%s: missing from %v", id, res)
			continue
		}
		if c.Status != want.status || !strings.Contains(c.Evidence, want.text) {
			t.Errorf("%s: %s %q, want %s with %q", id, c.Status, c.Evidence, want.status, want.text)
		}
	}
	if f := m["plugin.good.backup.space"].Fix; f == nil || f.Kind != api.FixManual {
		t.Errorf("a plugin's auto fix must be reported manual: %+v", f)
	}
	if c := m["plugin.good.backup.age"]; c.Source != "plugin:good" || len(c.DependsOn) != 1 || c.DependsOn[0] != "plugin.good" {
		t.Errorf("plugin check metadata %+v", c)
	}
	// The hanging plugin and its child are gone.
	for _, f := range []string{"shell", "child"} {
		b, err := os.ReadFile(filepath.Join(pids, f))
		if err != nil {
			t.Fatalf("sleepy %s pid: %v", f, err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		deadline := time.Now().Add(5 * time.Second)
		for syscall.Kill(pid, 0) == nil {
			if isZombie(pid) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("sleepy's %s (pid %d) still runs", f, pid)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] == 'Z'
}

func TestParsePluginOutput(t *testing.T) {
	for _, tc := range []struct {
		in, err string
	}{
		{`{"checks": []}`, "no checks"},
		{``, "empty output"},
		{`{"id": "a b", "status": "ok"}`, `id "a b"`},
		{`{"id": "a", "status": "ok", "fix": {"kind": "magic"}}`, `fix.kind "magic"`},
		{"\xff\xfe", "not UTF-8"},
		{`{"checks": [{"id": "a", "status": "ok"}], "schema": "cortex.doctor/v1", "summary": {}}`, ""},
	} {
		_, err := parsePluginOutput([]byte(tc.in))
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: %v, want %q", tc.in, err, tc.err)
		}
	}
}

func FuzzParsePluginOutput(f *testing.F) {
	f.Add([]byte(`{"checks": [{"id": "a", "status": "ok"}]}`))
	f.Add([]byte(`[{"id": "a", "status": "warn", "fix": {"kind": "manual"}}]`))
	f.Add([]byte(`{"id": "a", "status": "fail"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		checks, err := parsePluginOutput(b)
		if err != nil {
			return
		}
		for _, c := range checks {
			if c.ID == "" || c.Title == "" {
				t.Fatalf("accepted a check without id or title: %+v", c)
			}
			switch c.Status {
			case api.CheckOK, api.CheckWarn, api.CheckFail, api.CheckSkip:
			default:
				t.Fatalf("accepted status %q", c.Status)
			}
		}
	})
}
