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
	"github.com/cortexrt/cortex/internal/manifest"
)

// hostRuntime returns the first runtime of a language (manifest order,
// newest first) the host has: tests probe, never assume the interpreter.
func hostRuntime(t *testing.T, r *Registry, python bool) Interpreter {
	t.Helper()
	var errs []string
	for i := len(manifest.Runtimes) - 1; i >= 0; i-- {
		rt := manifest.Runtimes[i]
		if manifest.IsPython(rt) != python {
			continue
		}
		ip, err := r.Lookup(rt)
		if err == nil {
			return ip
		}
		errs = append(errs, err.Error())
	}
	kerneltest.Missing(t, "no interpreter: "+strings.Join(errs, "; "))
	return Interpreter{}
}

// TestLookup finds every known runtime the host has, with the version the
// name promises, and at least one Python and one Node.
func TestLookup(t *testing.T) {
	r := NewRegistry(nil, config.FromEnv().PyenvRoot)
	hostRuntime(t, r, true)
	hostRuntime(t, r, false)
	for _, rt := range manifest.Runtimes {
		ip, err := r.Lookup(rt)
		if err != nil {
			t.Logf("%s: %v", rt, err)
			continue
		}
		want := strings.TrimPrefix(rt, "python") + "."
		if manifest.IsNode(rt) {
			want = "v" + strings.TrimPrefix(rt, "nodejs") + "."
		}
		if ip.Runtime != rt || !strings.HasPrefix(ip.Version, want) || !isELF(ip.Path) {
			t.Errorf("%s: got %+v", rt, ip)
		}
		t.Logf("%s: %s (%s)", rt, ip.Path, ip.Version)
	}
}

// TestLookupRange: a range resolves to the newest runtime of it the host
// has; a range the host has nothing of fails with a hint naming them.
func TestLookupRange(t *testing.T) {
	r := NewRegistry(nil, config.FromEnv().PyenvRoot)
	newest := hostRuntime(t, r, true)
	ip, err := r.Lookup("python>=3.10")
	if err != nil || ip.Runtime != newest.Runtime || ip.Path != newest.Path {
		t.Errorf("Lookup(python>=3.10) = %+v, %v; want %+v", ip, err, newest)
	}
	ip, err = r.Lookup("python>=" + strings.TrimPrefix(newest.Runtime, "python"))
	if err != nil || ip.Runtime != newest.Runtime {
		t.Errorf("range starting at the newest: %+v, %v", ip, err)
	}
	none := NewRegistry(map[string]string{"python3.12": "/nonexistent/python3.12", "python3.13": "/nonexistent/python3.13"}, config.FromEnv().PyenvRoot)
	_, err = none.Lookup("python>=3.12")
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "python>=3.12") || !strings.Contains(errdefs.HintOf(err), "python3.13, python3.12") {
		t.Errorf("Lookup of a range with nothing installed: %v (hint %q)", err, errdefs.HintOf(err))
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
	have := hostRuntime(t, NewRegistry(nil, config.FromEnv().PyenvRoot), true)
	other := "python3.10"
	if have.Runtime == other {
		other = "python3.13"
	}
	r := NewRegistry(map[string]string{other: have.Path}, config.FromEnv().PyenvRoot)
	err := r.Available(other)
	if err == nil || !strings.Contains(err.Error(), "is "+strings.TrimPrefix(have.Runtime, "python")) {
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
		{"python return", "python", "agents.ok:main", 0, "hello from python"},
		{"python exception", "python", "agents.boom:main", 1, "RuntimeError: kaboom"},
		{"python coroutine", "python", "agents.aio:main", 0, "awaited"},
		{"python missing module", "python", "agents.nope:main", 1, "check the entrypoint"},
		{"python missing function", "python", "agents.ok:nope", 1, "has no function"},
		{"node promise", "nodejs", "agent.js:run", 0, "hello from node"},
		{"node rejection", "nodejs", "agent.js:fail", 1, "node kaboom"},
		{"node esm", "nodejs", "esm.mjs:run", 0, "hello from esm"},
		{"node missing export", "nodejs", "agent.js:nope", 1, "has no exported function"},
	}
	r := NewRegistry(nil, config.FromEnv().PyenvRoot)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ip := hostRuntime(t, r, manifest.IsPython(tc.runtime))
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
