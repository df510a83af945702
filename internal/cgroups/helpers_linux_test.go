package cgroups

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/runtimes/runtimestest"
)

// The test binary doubles as the helper process the suite puts in
// cgroups: CORTEX_CGROUPS_HELPER names what it does, after it has read one
// line from stdin (so the test can add it to a group first).
const helperEnv = "CORTEX_CGROUPS_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		helperMain(mode, os.Getenv(helperEnv+"_ARG"))
		return
	}
	os.Exit(m.Run())
}

func helperMain(mode, arg string) {
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	switch mode {
	case "sleep":
		select {}
	case "alloc": // touch arg bytes, one write per page
		n, _ := strconv.Atoi(arg)
		b := make([]byte, n)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		fmt.Println("survived", len(b))
		os.Exit(0)
	case "alloc-hold": // touch arg bytes, then wait to be killed
		n, _ := strconv.Atoi(arg)
		b := make([]byte, n)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		fmt.Println("holding", len(b))
		select {}
	case "spin": // keep every CPU busy
		for i := 0; i < runtime.NumCPU(); i++ {
			go func() {
				//lint:ignore SA5002 the point is to burn CPU
				for {
				}
			}()
		}
		select {}
	case "count": // write an increasing counter to the file arg
		tmp := arg + ".tmp"
		for i := 0; ; i++ {
			_ = os.WriteFile(tmp, []byte(strconv.Itoa(i)), 0o644)
			_ = os.Rename(tmp, arg)
			time.Sleep(5 * time.Millisecond)
		}
	}
	fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
	os.Exit(2)
}

// proc is a process started by a test, blocked until release.
type proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   string // file with stdout and stderr
	done  chan struct{}
	state *os.ProcessState
}

// startHelper re-executes the test binary in helper mode.
func startHelper(t *testing.T, mode, arg string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperEnv+"_ARG="+arg)
	return start(t, cmd)
}

// startCmd starts an external program (sh, python); it must read a line
// from stdin before doing anything that matters.
func startCmd(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return start(t, exec.Command(name, args...))
}

func start(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	// A file, not a pipe: Wait must not wait for children holding it.
	cmd.Stdout, cmd.Stderr = out, out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	p := &proc{cmd: cmd, stdin: stdin, out: out.Name(), done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// release lets the process go on.
func (p *proc) release(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
		t.Fatalf("release pid %d: %v", p.pid(), err)
	}
}

// wait waits for the process to end and returns how it ended.
func (p *proc) wait(t *testing.T, timeout time.Duration) *os.ProcessState {
	t.Helper()
	select {
	case <-p.done:
		return p.state
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("pid %d still running after %s; output: %s", p.pid(), timeout, p.output())
		return nil
	}
}

func (p *proc) output() string {
	b, _ := os.ReadFile(p.out)
	return string(b)
}

// killedBy reports whether st says the process died of signal sig.
func killedBy(st *os.ProcessState, sig string) bool {
	return st != nil && strings.Contains(st.String(), "signal: "+sig)
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func randomParent(t testing.TB) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "cortex-test-" + hex.EncodeToString(b)
}

// groupDirs returns every directory g has (or had) on disk.
func groupDirs(t testing.TB, m Manager, name string) []string {
	t.Helper()
	switch m := m.(type) {
	case *v1Manager:
		var out []string
		for _, h := range m.dirs {
			out = append(out, h.dir(groupRel(m.parent, name)))
		}
		return out
	case *v2Manager:
		return []string{m.dir(groupRel(m.parent, name))}
	}
	t.Fatalf("unknown manager %T", m)
	return nil
}

// cleanupParent deletes every group under m's parent and the parent
// itself, whatever the test left behind.
func cleanupParent(t testing.TB, m Manager) {
	t.Helper()
	t.Cleanup(func() {
		names, err := m.List()
		if err != nil {
			t.Errorf("cleanup: list: %v", err)
		}
		for _, n := range names {
			g, err := m.Load(n)
			if err != nil {
				t.Errorf("cleanup: load %s: %v", n, err)
				continue
			}
			if err := g.Delete(); err != nil {
				t.Errorf("cleanup: delete %s: %v", n, err)
			}
		}
		for _, dir := range groupDirs(t, m, ".") {
			if err := removeTree(dir, time.Now().Add(removeTimeout)); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
}

// readInt reads a file holding one integer.
func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return 0, errors.New("empty")
	}
	return strconv.ParseInt(s, 10, 64)
}

// python returns a real Python interpreter (an ELF, not a pyenv shim,
// which forks and would spend the pids budget), found as the daemon finds
// one.
func python(t *testing.T) string { return runtimestest.Python(t).Path }
