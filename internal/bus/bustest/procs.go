package bustest

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/kerneltest"
	"github.com/cortexrt/cortex/internal/runtimes/runtimestest"
)

// SDKDir is the repository's sdk/ directory, found by walking up from the
// working directory to go.mod.
func SDKDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "sdk")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Proc is a child process whose stdout lines are collected.
type Proc struct {
	Cmd *exec.Cmd

	mu     sync.Mutex
	lines  []string
	stderr bytes.Buffer
	notify chan struct{}
	done   chan struct{}
	err    error
}

// Options for a child process.
type Options struct {
	Env  []string            // extra KEY=VALUE
	Cred *syscall.Credential // run as another user
	Dir  string
}

// Start runs name with args; the test's cleanup kills it.
func Start(t testing.TB, name string, args []string, o Options) *Proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), o.Env...)
	cmd.Dir = o.Dir
	if o.Cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: o.Cred}
	}
	p := &Proc{Cmd: cmd, notify: make(chan struct{}, 1), done: make(chan struct{})}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &lockedWriter{p: p}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<16), 1<<26)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			select {
			case p.notify <- struct{}{}:
			default:
			}
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", filepath.Base(name), p.Stderr())
		}
	})
	return p
}

type lockedWriter struct{ p *Proc }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.stderr.Write(b)
}

// Python runs a script with the host's Python (runtimestest.Python) and
// the SDK on PYTHONPATH.
func Python(t testing.TB, script string, args []string, o Options) *Proc {
	t.Helper()
	return PythonWith(t, runtimestest.Python(t).Path, script, args, o)
}

// PythonWith runs a script with the given interpreter.
func PythonWith(t testing.TB, interp, script string, args []string, o Options) *Proc {
	t.Helper()
	kerneltest.RequireFile(t, interp)
	o.Env = append([]string{"PYTHONPATH=" + filepath.Join(SDKDir(t), "python"), "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"}, o.Env...)
	return Start(t, interp, append([]string{"-u", script}, args...), o)
}

// Node runs a script with the host's Node (runtimestest.Node) and the
// SDK on NODE_PATH.
func Node(t testing.TB, script string, args []string, o Options) *Proc {
	t.Helper()
	node := runtimestest.Node(t).Path
	o.Env = append([]string{"NODE_PATH=" + filepath.Join(SDKDir(t), "node")}, o.Env...)
	return Start(t, node, append([]string{script}, args...), o)
}

// Lines is a snapshot of the stdout lines so far.
func (p *Proc) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// Stderr is what the process wrote to stderr so far.
func (p *Proc) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// WaitFor waits until cond holds for the stdout lines, the process exits
// or timeout passes; it reports whether cond held.
func (p *Proc) WaitFor(timeout time.Duration, cond func(lines []string) bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if cond(p.Lines()) {
			return true
		}
		select {
		case <-p.notify:
		case <-p.done:
			return cond(p.Lines())
		case <-deadline.C:
			return cond(p.Lines())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WaitLine waits for a stdout line containing substr.
func (p *Proc) WaitLine(timeout time.Duration, substr string) bool {
	return p.WaitFor(timeout, func(lines []string) bool {
		for _, l := range lines {
			if strings.Contains(l, substr) {
				return true
			}
		}
		return false
	})
}

// Wait waits up to timeout for the process to exit; exited reports
// whether it did, err is its exit error.
func (p *Proc) Wait(timeout time.Duration) (exited bool, err error) {
	select {
	case <-p.done:
		return true, p.err
	case <-time.After(timeout):
		return false, nil
	}
}

// Kill sends SIGKILL and reaps the process.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.Cmd.Process.Kill()
	<-p.done
}
