//go:build linux && cgo && amd64

package seccomp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/cortexrt/cortex/internal/kerneltest"
	"github.com/cortexrt/cortex/internal/runtimes/runtimestest"
	"github.com/cortexrt/cortex/internal/seccomp/internal/rawcall"
)

// The kernel tests re-exec the test binary as a helper process (TestMain
// branches on envHelper), which loads the filter the way the sandbox init
// will — no_new_privs, Load — and then tries things, reporting outcomes as
// JSON on stdout. The filter can never be unloaded, so it must not be loaded
// into the test process itself.
const (
	envHelper  = "CORTEX_SECCOMP_TEST_HELPER"  // helper mode
	envFilter  = "CORTEX_SECCOMP_TEST_FILTER"  // "1": load the filter first
	envDir     = "CORTEX_SECCOMP_TEST_DIR"     // scratch directory
	envSibling = "CORTEX_SECCOMP_TEST_SIBLING" // pid of a process to ptrace
	envArgs    = "CORTEX_SECCOMP_TEST_ARGS"    // JSON arguments of the mode
	envVector  = "CORTEX_SECCOMP_TEST_VECTOR"  // the i386 gate's vector (kerneltest.I386Gate)
	envOnly    = "CORTEX_SECCOMP_TEST_ONLY"    // "i386": run only the i386 gate probes

	helperTimeout = 2 * time.Minute
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(envHelper); mode != "" {
		os.Exit(helperMain(mode))
	}
	os.Exit(m.Run())
}

func helperMain(mode string) int {
	if os.Getenv(envFilter) == "1" {
		if err := loadFilter(); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
	}
	var args []string
	if a := os.Getenv(envArgs); a != "" {
		if err := json.Unmarshal([]byte(a), &args); err != nil {
			fmt.Fprintln(os.Stderr, "helper: args:", err)
			return 1
		}
	}
	var out any
	var err error
	switch mode {
	case "probes":
		out = runProbes(os.Getenv(envDir))
	case "exec":
		out, err = runGrandchild(args)
	case "status":
		out, err = threadStatus()
	case "bench":
		out, err = runBench(args)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	return 0
}

// loadFilter does what the sandbox init does right before exec.
func loadFilter() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if os.Getenv("CORTEX_SECCOMP_TEST_SKIP_NNP") != "1" {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("set no_new_privs: %w", err)
		}
	}
	f, err := Default().Build()
	if err != nil {
		return err
	}
	defer f.Release()
	if os.Getenv("CORTEX_SECCOMP_TEST_LOAD") == "program" {
		// As the sandbox init does: the daemon compiled the program.
		prog, err := f.BPF()
		if err != nil {
			return err
		}
		return LoadProgram(prog)
	}
	return f.Load()
}

// runHelper runs the test binary in mode and returns its stdout.
func runHelper(t testing.TB, mode string, filter bool, args []string, env ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), helperTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$", "-test.bench=^$")
	a, _ := json.Marshal(args)
	cmd.Env = append(os.Environ(), envHelper+"="+mode, envFilter+"="+map[bool]string{true: "1", false: "0"}[filter], envArgs+"="+string(a))
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper %s (filter %v): %v\nstderr:\n%s", mode, filter, err, stderr.String())
	}
	return out
}

// outcome names what a call did: "ok" or its errno.
func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	var e unix.Errno
	if errors.As(err, &e) {
		return unix.ErrnoName(e)
	}
	var o errOutcome
	if errors.As(err, &o) {
		return string(o)
	}
	return err.Error()
}

type probe struct {
	name string
	want string // under the filter (for i386 probes: where the gate is live)
	run  func(dir string) error
}

// i386 reports a probe that goes through the i386 gate (in a child
// process: a kernel without ia32 system calls kills the caller with
// SIGSEGV).
func (p probe) i386() bool { return strings.HasSuffix(p.name, "_int80") }

func sys(trap uintptr, args ...uintptr) (uintptr, error) {
	var a [6]uintptr
	copy(a[:], args)
	r, _, e := unix.Syscall6(trap, a[0], a[1], a[2], a[3], a[4], a[5])
	if e != 0 {
		return 0, e
	}
	return r, nil
}

// call makes a system call whose success is harmless.
func call(trap uintptr, args ...uintptr) func(string) error {
	return func(string) error {
		_, err := sys(trap, args...)
		return err
	}
}

// callFD makes a system call that returns a file descriptor on success and
// closes it.
func callFD(trap uintptr, args ...uintptr) func(string) error {
	return func(string) error {
		fd, err := sys(trap, args...)
		if err == nil {
			unix.Close(int(fd))
		}
		return err
	}
}

func cstr(s string) uintptr {
	p, err := unix.BytePtrFromString(s)
	if err != nil {
		panic(err)
	}
	return uintptr(unsafe.Pointer(p))
}

func htons(v uint16) uintptr { return uintptr(v>>8 | v<<8) }

const nsFlags = unix.CLONE_NEWUSER | unix.CLONE_NEWNS

// probes lists what the helper tries. Arguments are chosen so that a call
// the filter let through by mistake does nothing harmful, even as root (bad
// magic for reboot, paths that do not exist, an unknown file system), yet
// fails differently from EPERM; TestKernelProbesWithoutFilter checks that.
func probes() []probe {
	const eperm, enosys, ok = "EPERM", "ENOSYS", "ok"
	return []probe{
		// Mounts and the root.
		{"mount", eperm, func(d string) error { return unix.Mount("none", d, "cortex-no-such-fs", 0, "") }},
		{"umount2", eperm, func(d string) error { return unix.Unmount(filepath.Join(d, "not-mounted"), 0) }},
		{"pivot_root", eperm, func(d string) error { return unix.PivotRoot(filepath.Join(d, "a"), filepath.Join(d, "b")) }},
		{"chroot", eperm, func(d string) error { return unix.Chroot(filepath.Join(d, "missing")) }},
		{"fsopen", eperm, callFD(unix.SYS_FSOPEN, cstr("cortex-no-such-fs"), 0)},
		{"open_tree", eperm, func(d string) error {
			return callFD(unix.SYS_OPEN_TREE, uintptr(unix.AT_FDCWD&0xffffffff), cstr(filepath.Join(d, "missing")), 0)(d)
		}},
		{"open_tree_attr", eperm, func(d string) error {
			return callFD(467, uintptr(unix.AT_FDCWD&0xffffffff), cstr(filepath.Join(d, "missing")), 0, 0, 0)(d)
		}},

		// Namespaces, through every entry point.
		{"unshare", eperm, func(string) error { return unix.Unshare(nsFlags) }},
		{"unshare_x32", eperm, func(string) error {
			_, _, e := unix.RawSyscall(x32SysBit|unix.SYS_UNSHARE, nsFlags, 0, 0)
			if e != 0 {
				return e
			}
			return nil
		}},
		{"unshare_int80", eperm, i386Call(i386Unshare, nsFlags)},
		{"getpid_int80", eperm, i386Call(20, 0)},
		{"setns", eperm, call(unix.SYS_SETNS, ^uintptr(0), 0)},
		{"clone_newpid", eperm, func(string) error { _, err := rawcall.CloneAndReap(unix.CLONE_NEWPID); return err }},
		{"clone_newuser", eperm, func(string) error { _, err := rawcall.CloneAndReap(unix.CLONE_NEWUSER); return err }},
		{"clone_newnet", eperm, func(string) error { _, err := rawcall.CloneAndReap(unix.CLONE_NEWNET); return err }},
		{"clone3", enosys, call(unix.SYS_CLONE3, 0, 0)},

		// Other processes.
		{"ptrace_attach_sibling", eperm, func(string) error { return ptraceSibling() }},
		{"process_vm_readv", eperm, func(string) error {
			src, dst := []byte("cortex"), make([]byte, 6)
			local := []unix.Iovec{{Base: &dst[0], Len: 6}}
			remote := []unix.RemoteIovec{{Base: uintptr(unsafe.Pointer(&src[0])), Len: 6}}
			_, err := unix.ProcessVMReadv(os.Getpid(), local, remote, 0)
			return err
		}},

		// The kernel.
		{"init_module", eperm, call(unix.SYS_INIT_MODULE, 0, 0, cstr(""))},
		{"finit_module", eperm, call(unix.SYS_FINIT_MODULE, ^uintptr(0), cstr(""), 0)},
		{"delete_module", eperm, call(unix.SYS_DELETE_MODULE, cstr("cortex_no_such_module"), 0)},
		{"kexec_load", eperm, call(unix.SYS_KEXEC_LOAD, 0, 0, 0, 0)},
		{"kexec_file_load", eperm, call(unix.SYS_KEXEC_FILE_LOAD, ^uintptr(0), ^uintptr(0), 0, 0, 0)},
		{"reboot", eperm, call(unix.SYS_REBOOT, 0, 0, 0, 0)}, // bad magic: EINVAL if let through
		{"bpf", eperm, call(unix.SYS_BPF, 0xffff, 0, 0)},
		{"perf_event_open", eperm, callFD(unix.SYS_PERF_EVENT_OPEN, 0, 0, ^uintptr(0), ^uintptr(0), 0)},
		{"keyctl", eperm, call(unix.SYS_KEYCTL, 0xffff, 0, 0, 0, 0)},
		{"add_key", eperm, call(unix.SYS_ADD_KEY, 0, 0, 0, 0, 0)},
		{"request_key", eperm, call(unix.SYS_REQUEST_KEY, 0, 0, 0, 0)},
		{"userfaultfd", eperm, callFD(unix.SYS_USERFAULTFD, 0xffff)},
		{"io_uring_setup", eperm, func(string) error {
			var params [120]byte // struct io_uring_params
			return callFD(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params[0])))("")
		}},
		{"open_by_handle_at", eperm, callFD(unix.SYS_OPEN_BY_HANDLE_AT, ^uintptr(0), 0, 0)},
		{"name_to_handle_at", eperm, call(unix.SYS_NAME_TO_HANDLE_AT, uintptr(unix.AT_FDCWD&0xffffffff), cstr("/cortex-missing"), 0, 0, 0)},
		{"swapon", eperm, call(unix.SYS_SWAPON, cstr("/cortex-missing-swap"), 0)},
		{"swapoff", eperm, call(unix.SYS_SWAPOFF, cstr("/cortex-missing-swap"))},
		{"settimeofday", eperm, call(unix.SYS_SETTIMEOFDAY, 0, 0)}, // NULL, NULL: changes nothing
		{"clock_settime", eperm, call(unix.SYS_CLOCK_SETTIME, 1000, 0)},
		{"syslog", eperm, call(unix.SYS_SYSLOG, 10, 0, 0)}, // SYSLOG_ACTION_SIZE_BUFFER
		{"get_mempolicy", eperm, call(unix.SYS_GET_MEMPOLICY, 0, 0, 0, 0, 0)},

		// Sockets.
		{"socket_packet", eperm, callFD(unix.SYS_SOCKET, unix.AF_PACKET, unix.SOCK_RAW, htons(unix.ETH_P_ALL))},
		{"socket_inet_raw", eperm, callFD(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)},
		{"socket_inet6_raw", eperm, callFD(unix.SYS_SOCKET, unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_NONBLOCK, unix.IPPROTO_ICMPV6)},
		{"socket_inet_sock_packet", eperm, callFD(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_PACKET, htons(unix.ETH_P_ALL))},
		{"socket_vsock", eperm, callFD(unix.SYS_SOCKET, unix.AF_VSOCK, unix.SOCK_STREAM, 0)},
		{"socket_netlink_audit", eperm, callFD(unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_AUDIT)},
		{"socketpair_inet", eperm, func(string) error {
			var fds [2]int32
			_, err := sys(unix.SYS_SOCKETPAIR, unix.AF_INET, unix.SOCK_STREAM, 0, uintptr(unsafe.Pointer(&fds[0])))
			if err == nil {
				unix.Close(int(fds[0]))
				unix.Close(int(fds[1]))
			}
			return err
		}},

		// Terminals and personality.
		{"ioctl_tiocsti", eperm, func(string) error {
			return onPTY(func(tty int) error {
				c := byte('x')
				_, err := sys(unix.SYS_IOCTL, uintptr(tty), unix.TIOCSTI, uintptr(unsafe.Pointer(&c)))
				return err
			})
		}},
		{"ioctl_tioclinux", eperm, func(string) error {
			return onPTY(func(tty int) error {
				sub := byte(12) // TIOCL_GETFGCONSOLE
				_, err := sys(unix.SYS_IOCTL, uintptr(tty), unix.TIOCLINUX, uintptr(unsafe.Pointer(&sub)))
				return err
			})
		}},
		{"personality_addr_no_randomize", eperm, call(unix.SYS_PERSONALITY, 0x0040000)},

		// What must keep working.
		{"exec_sh", ok, func(string) error {
			out, err := exec.Command("/bin/sh", "-c", "echo ok").Output()
			if err == nil && string(out) != "ok\n" {
				err = fmt.Errorf("sh printed %q", out)
			}
			return err
		}},
		{"clone_fork", ok, func(string) error { _, err := rawcall.CloneAndReap(0); return err }},
		{"threads", ok, func(string) error { return startThreads(8) }},
		{"tcp", ok, func(string) error { return tcpRoundTrip() }},
		{"udp", ok, func(string) error { return udpRoundTrip() }},
		{"socketpair_unix", ok, func(string) error {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err == nil {
				unix.Close(fds[0])
				unix.Close(fds[1])
			}
			return err
		}},
		{"netlink_route", ok, func(string) error {
			ifs, err := net.Interfaces() // RTM_GETLINK over NETLINK_ROUTE
			if err == nil && len(ifs) == 0 {
				err = errors.New("no interfaces")
			}
			return err
		}},
		{"file_io", ok, func(d string) error { return fileIO(d) }},
		{"ioctl_tcgets", ok, func(string) error {
			return onPTY(func(tty int) error { _, err := unix.IoctlGetTermios(tty, unix.TCGETS); return err })
		}},
		{"personality_query", ok, call(unix.SYS_PERSONALITY, 0xffffffff)},
		{"getppid", ok, call(unix.SYS_GETPPID)},
	}
}

// runProbes runs each probe on a thread of its own that is thrown away
// afterwards (a goroutine that exits locked to its thread ends the thread),
// so per-thread state a probe changes cannot leak into the next.
func runProbes(dir string) map[string]string {
	got := map[string]string{}
	for _, p := range probes() {
		if os.Getenv(envOnly) == "i386" && !p.i386() {
			continue
		}
		done := make(chan error, 1)
		go func() {
			runtime.LockOSThread()
			done <- p.run(dir)
		}()
		got[p.name] = outcome(<-done)
	}
	return got
}

// errOutcome carries an outcome that is not an errno (a signal) through
// a probe's error.
type errOutcome string

func (e errOutcome) Error() string { return string(e) }

// i386Call makes i386 system call nr through the gate in $CORTEX_SECCOMP_
// TEST_VECTOR, in a child of the helper (which inherits the filter).
func i386Call(nr, a1 int) func(string) error {
	return func(string) error {
		v, err := strconv.Atoi(os.Getenv(envVector))
		if err != nil {
			return fmt.Errorf("%s: %v", envVector, err)
		}
		got, err := kerneltest.I386Gate{Vector: v}.Call(nr, a1, 0, 0)
		switch {
		case err != nil:
			return err
		case got == "ok":
			return nil
		}
		return errOutcome(got)
	}
}

func ptraceSibling() error {
	pid, err := strconv.Atoi(os.Getenv(envSibling))
	if err != nil {
		return fmt.Errorf("sibling pid: %w", err)
	}
	if err := unix.PtraceAttach(pid); err != nil {
		return err
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil {
		return fmt.Errorf("wait for the attach stop: %w", err)
	}
	return unix.PtraceDetach(pid)
}

func onPTY(fn func(tty int) error) error {
	ptm, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/ptmx: %w", err)
	}
	defer unix.Close(ptm)
	if err := unix.IoctlSetPointerInt(ptm, unix.TIOCSPTLCK, 0); err != nil {
		return fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetInt(ptm, unix.TIOCGPTN)
	if err != nil {
		return fmt.Errorf("pty number: %w", err)
	}
	tty, err := unix.Open("/dev/pts/"+strconv.Itoa(n), unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open pty: %w", err)
	}
	defer unix.Close(tty)
	return fn(tty)
}

// startThreads makes the Go runtime create n more OS threads (clone with
// thread flags) and checks they exist.
func startThreads(n int) error {
	before, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	release := make(chan struct{})
	started := make(chan struct{})
	for range n {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			started <- struct{}{}
			<-release
		}()
	}
	for range n {
		<-started
	}
	after, err := os.ReadDir("/proc/self/task")
	close(release)
	if err != nil {
		return err
	}
	if len(after) < n+1 || len(after) <= len(before) {
		return fmt.Errorf("%d threads before, %d after starting %d locked goroutines", len(before), len(after), n)
	}
	return nil
}

func tcpRoundTrip() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		buf := make([]byte, 4)
		if _, err := c.Read(buf); err != nil {
			errc <- err
			return
		}
		_, err = c.Write(buf)
		errc <- err
	}()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 30*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	buf := make([]byte, 4)
	if _, err := c.Read(buf); err != nil {
		return err
	}
	if err := <-errc; err != nil {
		return err
	}
	if string(buf) != "ping" {
		return fmt.Errorf("echo %q", buf)
	}
	return nil
}

func udpRoundTrip() error {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer pc.Close()
	if _, err := pc.WriteTo([]byte("ping"), pc.LocalAddr()); err != nil {
		return err
	}
	pc.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 8)
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != "ping" {
		return fmt.Errorf("got %q", buf[:n])
	}
	return nil
}

func fileIO(dir string) error {
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := os.WriteFile(a, []byte("data"), 0o600); err != nil {
		return err
	}
	if err := os.Rename(a, b); err != nil {
		return err
	}
	got, err := os.ReadFile(b)
	if err != nil {
		return err
	}
	if string(got) != "data" {
		return fmt.Errorf("read %q", got)
	}
	return os.Remove(b)
}

// runGrandchild runs args as a child of the (filtered) helper and returns
// the JSON object it prints.
func runGrandchild(args []string) (map[string]string, error) {
	if len(args) == 0 {
		return nil, errors.New("no command")
	}
	cmd := exec.Command(args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", args[0], err, stderr.String())
	}
	got := map[string]string{}
	if err := json.Unmarshal(out, &got); err != nil {
		return nil, fmt.Errorf("%s printed %q: %w", args[0], out, err)
	}
	return got, nil
}

// threadStatus reports NoNewPrivs and Seccomp for every thread, and Probe's
// answer from inside the filter.
func threadStatus() (map[string]string, error) {
	got := map[string]string{"probe": outcome(Probe())}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	got["threads"] = strconv.Itoa(len(tasks))
	for _, task := range tasks {
		status, err := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "status"))
		if err != nil {
			continue
		}
		for _, field := range []string{"NoNewPrivs", "Seccomp"} {
			v, _ := statusField(status, field)
			if prev, ok := got[field]; ok && prev != v {
				got[field] = "mixed"
				continue
			}
			got[field] = v
		}
	}
	return got, nil
}

func startSibling(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("/bin/sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd.Process.Pid
}

func probeResults(t *testing.T, gate kerneltest.I386Gate, filter bool, env ...string) map[string]string {
	t.Helper()
	sibling := startSibling(t)
	env = append(env, envDir+"="+t.TempDir(), envSibling+"="+strconv.Itoa(sibling), envVector+"="+strconv.Itoa(gate.Vector))
	out := runHelper(t, "probes", filter, nil, env...)
	got := map[string]string{}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("helper printed %q: %v", out, err)
	}
	return got
}

// TestKernelFilter loads the filter in a helper (still root, with every
// capability: the filter alone must refuse) and checks each refused call
// fails as designed while ordinary work goes on.
//
// The i386 gate probes expect EPERM where this kernel serves i386 system
// calls and SIGSEGV (the kernel's own refusal) where it does not:
// kerneltest.I386 probes which, and the test log says so.
func TestKernelFilter(t *testing.T) {
	kerneltest.Require(t, "seccomp filter", Probe)
	gate := kerneltest.I386(t)
	want := map[string]string{}
	for _, p := range probes() {
		want[p.name] = p.want
		if p.i386() {
			want[p.name] = gate.Want(p.want)
		}
	}
	// Filter.Load (libseccomp) and LoadProgram (the compiled program, as
	// the sandbox init loads it) must install the same filter.
	for _, load := range []string{"libseccomp", "program"} {
		t.Run(load, func(t *testing.T) {
			got := probeResults(t, gate, true, "CORTEX_SECCOMP_TEST_LOAD="+load)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("outcomes under the filter (-want +got):\n%s", diff)
			}
		})
	}
}

// TestKernelProbesWithoutFilter runs the same probes without the filter, as
// root: every refused probe must then fail differently (or succeed), so
// TestKernelFilter's EPERMs come from the filter and not from the kernel.
func TestKernelProbesWithoutFilter(t *testing.T) {
	kerneltest.RequireRoot(t)
	kerneltest.Require(t, "seccomp filter", Probe)
	gate := kerneltest.I386(t)
	got := probeResults(t, gate, false)
	if v, err := os.ReadFile("/proc/sys/kernel/io_uring_disabled"); err == nil && strings.TrimSpace(string(v)) != "0" {
		delete(got, "io_uring_setup") // the kernel refuses io_uring itself here, with EPERM
	}
	for _, p := range probes() {
		if _, ran := got[p.name]; !ran {
			continue
		}
		if p.i386() && !gate.Live {
			// The kernel refuses the gate itself, filter or not.
			if got[p.name] != "SIGSEGV" {
				t.Errorf("%s: %s without the filter, but %s", p.name, got[p.name], gate)
			}
			continue
		}
		if p.want == "ok" {
			if got[p.name] != "ok" {
				t.Errorf("%s: %s without the filter, want ok", p.name, got[p.name])
			}
			continue
		}
		if got[p.name] == p.want {
			t.Errorf("%s: %s even without the filter; the probe cannot tell the filter is there", p.name, got[p.name])
		}
	}
}

// TestKernelI386Gate runs the i386 gate probes with and without the
// filter through the host's gate and through a simulated kernel without
// i386 system calls (kerneltest.SimulatedNoIA32), so both answers a kernel
// can give are checked on every host: EPERM from the filter where the
// gate is live (the BPF test covers the filter's i386 branch where it is
// not), SIGSEGV from the kernel where it is closed, filter or not.
func TestKernelI386Gate(t *testing.T) {
	kerneltest.RequireRoot(t)
	kerneltest.Require(t, "seccomp filter", Probe)
	gates := map[string]kerneltest.I386Gate{"host": kerneltest.I386(t), "simulated-no-ia32": kerneltest.SimulatedNoIA32(t)}
	for name, gate := range gates {
		t.Run(name, func(t *testing.T) {
			for _, filter := range []bool{true, false} {
				got := probeResults(t, gate, filter, envOnly+"=i386")
				want := map[string]string{}
				for _, p := range probes() {
					if !p.i386() {
						continue
					}
					switch {
					case !gate.Live:
						want[p.name] = "SIGSEGV"
					case filter:
						want[p.name] = p.want
					default:
						want[p.name] = "ok" // root, no filter: getpid and unshare work
					}
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("filter %v (-want +got):\n%s", filter, diff)
				}
			}
		})
	}
}

// TestKernelGrandchildInherits checks an interpreter started by the filtered
// process runs under the filter too, and still works.
func TestKernelGrandchildInherits(t *testing.T) {
	kerneltest.Require(t, "seccomp filter", Probe)
	tests := []struct {
		name        string
		interpreter string
		script      string
		want        map[string]string
		unfiltered  map[string]string
	}{
		{
			name:        "python",
			interpreter: runtimestest.Python(t).Path,
			script:      "probe.py",
			want:        map[string]string{"unshare": "EPERM", "thread": "ok", "fork": "ok", "subprocess": "ok", "seccomp_mode": "2"},
			unfiltered:  map[string]string{"unshare": "ok", "thread": "ok", "fork": "ok", "subprocess": "ok", "seccomp_mode": "0"},
		},
		{
			name:        "node",
			interpreter: runtimestest.Node(t).Path,
			script:      "probe.js",
			want:        map[string]string{"fs": "ok", "worker": "ok", "child": "ok", "interfaces": "ok", "seccomp_mode": "2"},
			unfiltered:  map[string]string{"fs": "ok", "worker": "ok", "child": "ok", "interfaces": "ok", "seccomp_mode": "0"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			script, err := filepath.Abs(filepath.Join("testdata", "grandchild", tc.script))
			if err != nil {
				t.Fatal(err)
			}
			for _, filter := range []bool{true, false} {
				out := runHelper(t, "exec", filter, []string{tc.interpreter, script})
				var got map[string]string
				if err := json.Unmarshal(out, &got); err != nil {
					t.Fatalf("helper printed %q: %v", out, err)
				}
				want := tc.want
				if !filter {
					want = tc.unfiltered
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("filter %v (-want +got):\n%s", filter, diff)
				}
			}
		})
	}
}

// TestKernelLoadCoversAllThreads checks Load reaches every thread of a
// multi-threaded Go process and sets no_new_privs itself when the caller did
// not.
func TestKernelLoadCoversAllThreads(t *testing.T) {
	kerneltest.Require(t, "seccomp filter", Probe)
	for _, skipNNP := range []bool{false, true} {
		t.Run(fmt.Sprintf("caller_sets_nnp=%v", !skipNNP), func(t *testing.T) {
			env := "CORTEX_SECCOMP_TEST_SKIP_NNP=0"
			if skipNNP {
				env = "CORTEX_SECCOMP_TEST_SKIP_NNP=1"
			}
			out := runHelper(t, "status", true, nil, env)
			var got map[string]string
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("helper printed %q: %v", out, err)
			}
			if n, _ := strconv.Atoi(got["threads"]); n < 2 {
				t.Errorf("helper had %s threads; the check needs several", got["threads"])
			}
			delete(got, "threads")
			want := map[string]string{"NoNewPrivs": "1", "Seccomp": "2", "probe": "ok"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("thread status after Load (-want +got):\n%s", diff)
			}
		})
	}
}

func TestProbe(t *testing.T) {
	avail, err := os.ReadFile("/proc/sys/kernel/seccomp/actions_avail")
	kernelHas := err == nil && strings.Contains(string(avail), "errno") && strings.Contains(string(avail), "allow")
	if got := Probe(); (got == nil) != kernelHas {
		t.Fatalf("Probe() = %v, but actions_avail %q (read error %v)", got, avail, err)
	}
}

func TestFilterReleased(t *testing.T) {
	f, err := Default().Build()
	if err != nil {
		t.Fatal(err)
	}
	f.Release()
	f.Release() // twice is fine
	if _, err := f.BPF(); err == nil {
		t.Error("BPF after Release succeeded")
	}
	if err := f.Load(); err == nil {
		t.Error("Load after Release succeeded")
	}
}

func TestBuildRejectsUnknownSyscall(t *testing.T) {
	p := Profile{BadArchAction: ActEPERM, Rules: []Rule{{Syscall: "cortex_no_such_call", Action: ActEPERM, Reason: "r"}}}
	if _, err := p.Build(); err == nil || !strings.Contains(err.Error(), "cortex_no_such_call") {
		t.Fatalf("Build() = %v, want an error naming the call", err)
	}
}

// runBench times about args[1] iterations of the call args[0] on one thread
// and returns the cost of one.
func runBench(args []string) (map[string]float64, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("want call and count, got %q", args)
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return nil, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var fn func()
	switch args[0] {
	case "getppid":
		fn = func() { unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0) }
	case "ioctl":
		// ioctl has argument rules, so the kernel's per-number action cache
		// cannot skip the filter for it: the full program runs every time.
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		defer unix.Close(fd)
		var termios unix.Termios
		fn = func() {
			unix.RawSyscall(unix.SYS_IOCTL, uintptr(fd), unix.TCGETS, uintptr(unsafe.Pointer(&termios)))
		}
	default:
		return nil, fmt.Errorf("unknown call %q", args[0])
	}
	// CPU time of this thread (user and system), not wall time, so time the
	// thread spends descheduled on a shared machine does not count; and the
	// fastest of several equal slices of the loop, to drop slices that paid
	// for someone else's cache misses.
	const slices = 10
	per := max(n/slices, 1)
	best := int64(-1)
	for range slices {
		start, err := threadCPUTime()
		if err != nil {
			return nil, err
		}
		for range per {
			fn()
		}
		end, err := threadCPUTime()
		if err != nil {
			return nil, err
		}
		if d := end - start; best < 0 || d < best {
			best = d
		}
	}
	return map[string]float64{"ns_per_call": float64(best) / float64(per)}, nil
}

func threadCPUTime() (int64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, fmt.Errorf("thread cpu time: %w", err)
	}
	return ts.Nano(), nil
}

// BenchmarkSyscall reports the cost of one cheap system call with and
// without the filter loaded, each measured in a helper process. ns/op is the
// helper's own timing (no process start-up): the thread CPU time of the
// fastest of ten slices of b.N calls, divided by the slice's length.
func BenchmarkSyscall(b *testing.B) {
	kerneltest.Require(b, "seccomp filter", Probe)
	for _, c := range []string{"getppid", "ioctl"} {
		for _, filter := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/filter=%v", c, filter), func(b *testing.B) {
				out := runHelper(b, "bench", filter, []string{c, strconv.Itoa(b.N)})
				var got map[string]float64
				if err := json.Unmarshal(out, &got); err != nil {
					b.Fatalf("helper printed %q: %v", out, err)
				}
				b.ReportMetric(got["ns_per_call"], "ns/op")
			})
		}
	}
}

func BenchmarkBuild(b *testing.B) {
	p := Default()
	for b.Loop() {
		f, err := p.Build()
		if err != nil {
			b.Fatal(err)
		}
		f.Release()
	}
}
