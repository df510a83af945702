package kerneltest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// The i386 system call gate (int $0x80 from a 64-bit process) is live on
// some kernels of one build and not on others: a kernel booted with
// ia32_emulation=0, or a platform that does not forward the vector, kills
// the caller with SIGSEGV before any seccomp filter sees the call. Both
// are walls; a test must not assume which this host has. I386 probes it
// once, in a child process, and tells the test which answer to expect.
//
// CORTEX_TEST_IA32=off simulates a kernel without ia32 system calls on a
// host that has them: every gate call (the probe's included) then uses
// int $0x81, a vector no Linux kernel opens to user space, which takes the
// same path as int $0x80 on a kernel with ia32 emulation off (a general
// protection fault, SIGSEGV). The probe still decides: it reports the gate
// closed because the call really faults.
const EnvIA32 = "CORTEX_TEST_IA32"

// envI386Call makes a test binary that imports kerneltest run one gate
// call instead of its tests (see init): "vector,nr,a1,a2,a3".
const envI386Call = "CORTEX_KERNELTEST_I386_CALL"

// Gate vectors.
const (
	VectorIA32   = 0x80 // the i386 system call gate
	VectorClosed = 0x81 // opened to user space by no kernel: #GP, SIGSEGV
)

// I386Gate is the i386 system call gate a test uses, and how this kernel
// answers it.
type I386Gate struct {
	// Vector is VectorIA32, or VectorClosed when simulating.
	Vector int
	// Simulated is set when the gate simulates a kernel without ia32
	// system calls (CORTEX_TEST_IA32=off, or SimulatedNoIA32).
	Simulated bool
	// Live reports that the kernel served an i386 getpid through the gate;
	// false means the call was killed by SIGSEGV (ia32 off).
	Live bool
}

// String says which outcome the gate gives, for test logs.
func (g I386Gate) String() string {
	switch {
	case g.Live:
		return fmt.Sprintf("int $%#x: i386 system calls are live; the seccomp filter must refuse them with EPERM", g.Vector)
	case g.Simulated:
		return fmt.Sprintf("int $%#x: SIMULATED kernel without i386 system calls (%s=off): the kernel kills the caller with SIGSEGV, a wall of its own", g.Vector, EnvIA32)
	}
	return fmt.Sprintf("int $%#x: this kernel has no i386 system calls (ia32 emulation off): it kills the caller with SIGSEGV, a wall of its own", g.Vector)
}

// Want is the outcome a gate call should have: refused (the errno name a
// filter answers with, "EPERM", or what the kernel answers without one)
// where the gate is live, and "SIGSEGV" where it is not.
func (g I386Gate) Want(live string) string {
	if g.Live {
		return live
	}
	return "SIGSEGV"
}

// Call makes i386 system call nr with up to three arguments through the
// gate in a child process (the test binary, re-executed), so a kernel
// that kills the caller kills only the child. It returns "ok", the errno
// name the call failed with, or the name of the signal that killed the
// child ("SIGSEGV").
func (g I386Gate) Call(nr, a1, a2, a3 int) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(exe, "-test.run=^$")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envI386Call+"=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, fmt.Sprintf("%s=%d,%d,%d,%d,%d", envI386Call, g.Vector, nr, a1, a2, a3))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return unixSignalName(ws.Signal()), nil
		}
	}
	if err != nil {
		return "", fmt.Errorf("i386 gate child: %v: %s", err, stderr.String())
	}
	var res struct {
		Outcome string `json:"outcome"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.Outcome == "" {
		return "", fmt.Errorf("i386 gate child printed %q (%v); stderr: %s", out, err, stderr.String())
	}
	return res.Outcome, nil
}

var (
	hostOnce sync.Once
	hostGate I386Gate
	hostErr  error
)

// I386 probes, once per test binary, whether this kernel serves i386
// system calls through int $0x80 (or simulates a kernel that does not, see
// EnvIA32), logs which, and returns the gate tests should use. It skips
// (fails in CI) where the gate cannot be reached at all (not linux/amd64,
// no cgo-free assembly) and fails if the probe gives an answer that is
// neither a result nor SIGSEGV.
func I386(t testing.TB) I386Gate {
	t.Helper()
	hostOnce.Do(func() {
		g := I386Gate{Vector: VectorIA32}
		switch v := os.Getenv(EnvIA32); v {
		case "", "probe":
		case "off":
			g = I386Gate{Vector: VectorClosed, Simulated: true}
		default:
			hostErr = fmt.Errorf("%s=%q: use off (simulate a kernel without ia32 system calls) or leave it unset", EnvIA32, v)
			return
		}
		hostGate, hostErr = probeGate(g)
	})
	if hostErr != nil {
		if errors.Is(hostErr, errNoGate) {
			Missing(t, hostErr.Error())
		}
		t.Fatal(hostErr)
	}
	t.Log(hostGate)
	return hostGate
}

// SimulatedNoIA32 probes the closed vector as a kernel without ia32
// system calls would answer int $0x80, so a test can check its
// expectations for such a kernel on any host.
func SimulatedNoIA32(t testing.TB) I386Gate {
	t.Helper()
	g, err := probeGate(I386Gate{Vector: VectorClosed, Simulated: true})
	if err != nil {
		if errors.Is(err, errNoGate) {
			Missing(t, err.Error())
		}
		t.Fatal(err)
	}
	if g.Live {
		t.Fatalf("int $%#x returned from the kernel; the simulation of a closed gate does not hold on this kernel", VectorClosed)
	}
	t.Log(g)
	return g
}

var errNoGate = errors.New("the i386 gate probe needs linux/amd64")

// probeGate asks the kernel for the caller's pid through g (i386 getpid
// is 20).
func probeGate(g I386Gate) (I386Gate, error) {
	if !gateSupported {
		return g, errNoGate
	}
	got, err := g.Call(20, 0, 0, 0)
	if err != nil {
		return g, fmt.Errorf("probe the i386 gate: %w", err)
	}
	switch got {
	case "ok":
		g.Live = true
	case "SIGSEGV":
		g.Live = false
	default:
		return g, fmt.Errorf("probe the i386 gate (int $%#x, getpid): %s; want a pid or SIGSEGV", g.Vector, got)
	}
	return g, nil
}

func init() {
	spec := os.Getenv(envI386Call)
	if spec == "" {
		return
	}
	var v [5]int
	parts := strings.Split(spec, ",")
	if len(parts) != len(v) {
		fmt.Fprintf(os.Stderr, "%s=%q: want vector,nr,a1,a2,a3\n", envI386Call, spec)
		os.Exit(2)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s=%q: %v\n", envI386Call, spec, err)
			os.Exit(2)
		}
		v[i] = n
	}
	outcome, err := gateCall(v[0], v[1], v[2], v[3], v[4])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]string{"outcome": outcome})
	os.Exit(0)
}
