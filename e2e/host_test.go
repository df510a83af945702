package e2e

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/daemon/daemontest"
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
