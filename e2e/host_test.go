package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/cortexrt/cortex/internal/cgroups"
	"github.com/cortexrt/cortex/internal/daemon/daemontest"
	"github.com/cortexrt/cortex/internal/kerneltest"
	"github.com/cortexrt/cortex/internal/sandbox"
)

// TestProcMasked: every /proc path the sandbox masks (runc's list,
// /proc/interrupts, kallsyms, driver) that this host has is a mount point
// inside the sandbox, the masked directories list nothing, and the
// read-only paths refuse writes.
func TestProcMasked(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	dir := daemontest.Project(t, map[string]string{
		"cortex.yaml": manifest("procmask", pyAgent("looker", "looker:main", "")),
		"looker.py": `import os
def main():
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            points.append(line.split()[4])
    print("points", " ".join(points), flush=True)
    if os.path.isdir("/proc/driver"):
        print("driver lists", len(os.listdir("/proc/driver")), flush=True)
`,
	})
	d.MustCLI(dir, "run", ".")
	out := d.MustCLI("", "logs", "procmask/looker")
	var points []string
	driverListed := ""
	for _, l := range strings.Split(out, "\n") {
		if _, rest, ok := strings.Cut(l, "points "); ok {
			points = strings.Fields(rest)
		}
		if _, rest, ok := strings.Cut(l, "driver lists "); ok {
			driverListed = strings.TrimSpace(rest)
		}
	}
	if len(points) == 0 {
		t.Fatalf("no report in the logs:\n%s", out)
	}
	for _, p := range append(sandbox.MaskedProcPaths(), sandbox.ReadOnlyProcPaths()...) {
		if _, err := os.Stat(p); err != nil {
			t.Logf("%s: not on this host (%v)", p, err)
			continue
		}
		if !slices.Contains(points, p) {
			t.Errorf("%s is on the host but not masked (no mount point there in the sandbox)", p)
		}
	}
	if _, err := os.Stat("/proc/driver"); err == nil {
		if driverListed != "0" {
			t.Errorf("/proc/driver in the sandbox lists %q entries, want 0", driverListed)
		}
	}
}

// TestCgroupV2OnlyHost runs cortexd where /sys/fs/cgroup is a cgroup2
// mount and nothing else (a v2-only host's layout, in a private mount
// namespace). This host's memory, cpu and pids controllers are bound to
// v1 hierarchies, so that cgroup2 offers none: the daemon must detect v2
// and refuse to start with the reason and the fix, not run agents without
// a memory ceiling. (The v2 driver itself is tested against the real
// cgroup2 hierarchy in internal/cgroups TestConformance/v2.)
func TestCgroupV2OnlyHost(t *testing.T) {
	info := cgroups.Probe()
	if info.V2Mount == "" {
		kerneltest.Missing(t, "no cgroup2 mount on this host")
	}
	if slices.Contains(info.V2Controllers, "memory") {
		// A property of the host, not a missing feature: there every e2e
		// test already runs the daemon on v2 with its controllers.
		t.Skipf("this host's cgroup2 (%s) offers the memory controller; the daemon runs on it in every other e2e test", info.V2Mount)
	}
	d := daemontest.Start(t, daemontest.Options{NoStart: true})
	script := `set -e
umount -l /sys/fs/cgroup
mount -t cgroup2 none /sys/fs/cgroup
exec "$0" --log-level debug`
	cmd := exec.Command("/bin/sh", "-c", script, filepath.Join(d.Bin, "cortexd"))
	cmd.Env = d.Env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("cortexd started on a cgroup2 without a memory controller:\n%s", out)
	}
	for _, want := range []string{"cgroup v2 at /sys/fs/cgroup does not offer the memory controller", "Delegate=yes"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("cortexd's refusal lacks %q:\n%s", want, out)
		}
	}
}
