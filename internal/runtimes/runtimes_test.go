package runtimes

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/kerneltest"
)

func TestLookupPython311(t *testing.T) {
	r := NewRegistry(nil, config.FromEnv().PyenvRoot)
	ip, err := r.Lookup("python3.11")
	if err != nil {
		kerneltest.Missing(t, "python3.11: "+err.Error())
	}
	if !strings.HasPrefix(ip.Version, "3.11.") || !isELF(ip.Path) {
		t.Fatalf("got %+v", ip)
	}
}

func TestMissingInterpreterIsInvalidWithHint(t *testing.T) {
	r := NewRegistry(map[string]string{"python3.12": "/nonexistent/python3.12"}, config.FromEnv().PyenvRoot)
	err := r.Available("python3.12")
	if err == nil {
		t.Fatal("want error")
	}
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(errdefs.HintOf(err), "runtimes.python3.12") {
		t.Fatalf("err=%v hint=%q", err, errdefs.HintOf(err))
	}
	if err := r.Available("ruby3"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("unknown runtime: %v", err)
	}
}

func TestOverrideWithWrongVersionRefused(t *testing.T) {
	r := NewRegistry(map[string]string{"python3.10": "/usr/bin/python3.11"}, config.FromEnv().PyenvRoot)
	if _, err := os.Stat("/usr/bin/python3.11"); err != nil {
		kerneltest.Missing(t, "needs /usr/bin/python3.11")
	}
	err := r.Available("python3.10")
	if err == nil || !strings.Contains(err.Error(), "is 3.11") {
		t.Fatalf("err = %v", err)
	}
}

// TestBootstrap runs the real shims: return exits 0, an exception exits 1
// with a traceback, coroutine functions are awaited, a missing module names
// the entrypoint.
func TestBootstrap(t *testing.T) {
	shimDir, err := Install(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	app := t.TempDir()
	write := func(name, body string) {
		p := filepath.Join(app, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("agents/__init__.py", "")
	write("agents/ok.py", "def main():\n    print('hello from python')\n")
	write("agents/boom.py", "def main():\n    raise RuntimeError('kaboom')\n")
	write("agents/aio.py", "import asyncio\nasync def main():\n    await asyncio.sleep(0)\n    print('awaited')\n")
	write("agent.js", "exports.run = async () => { await new Promise(r => setTimeout(r, 1)); console.log('hello from node'); };\nexports.fail = async () => { throw new Error('node kaboom'); };\n")
	write("esm.mjs", "export function run() { console.log('hello from esm'); }\n")

	tests := []struct {
		name, runtime, entry string
		wantCode             int
		wantOut              string
	}{
		{"python return", "python3.11", "agents.ok:main", 0, "hello from python"},
		{"python exception", "python3.11", "agents.boom:main", 1, "RuntimeError: kaboom"},
		{"python coroutine", "python3.11", "agents.aio:main", 0, "awaited"},
		{"python missing module", "python3.11", "agents.nope:main", 1, "check the entrypoint"},
		{"python missing function", "python3.11", "agents.ok:nope", 1, "has no function"},
		{"node promise", "nodejs20", "agent.js:run", 0, "hello from node"},
		{"node rejection", "nodejs20", "agent.js:fail", 1, "node kaboom"},
		{"node esm", "nodejs20", "esm.mjs:run", 0, "hello from esm"},
		{"node missing export", "nodejs20", "agent.js:nope", 1, "has no exported function"},
	}
	r := NewRegistry(nil, config.FromEnv().PyenvRoot)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ip, err := r.Lookup(tc.runtime)
			if err != nil {
				kerneltest.Missing(t, err.Error())
			}
			argv := Argv(ip, shimDir, tc.entry)
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.Dir = app
			out, _ := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != tc.wantCode {
				t.Errorf("exit %d, want %d; output:\n%s", code, tc.wantCode, out)
			}
			if !strings.Contains(string(out), tc.wantOut) {
				t.Errorf("output lacks %q:\n%s", tc.wantOut, out)
			}
		})
	}
}
