package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// canAutostart: cortexd runs on Linux, so only there does the CLI start one.
const canAutostart = true

// startDetached starts cmd in its own session, so it outlives the CLI.
func startDetached(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return cmd.Start()
}

// processGone reports whether pid has exited (a zombie counts as gone:
// its parent has not reaped it yet).
func processGone(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && (s[i+2] == 'Z' || s[i+2] == 'X')
}

// stopProcess sends SIGTERM to pid and waits up to grace for it to exit,
// then SIGKILL.
func stopProcess(ctx context.Context, pid int, grace time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("stop cortexd (pid %d): %w", pid, err)
	}
	deadline := time.Now().Add(grace)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			deadline = time.Now().Add(5 * time.Second)
			for !processGone(pid) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if !processGone(pid) {
				return fmt.Errorf("cortexd (pid %d) did not exit", pid)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// systemdUnit reports whether pid runs in the systemd unit (its cgroup
// path ends with /unit).
func systemdUnit(pid int, unit string) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasSuffix(strings.TrimSpace(l), "/"+unit) {
			return true
		}
	}
	return false
}

// lockFile takes an exclusive lock on f without waiting.
func lockFile(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) }
