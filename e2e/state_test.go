package e2e

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/daemon/daemontest"
)

// stateAgent writes a secret into its write grant and publishes it on a
// durable bus channel: user data in the project's data directory (run
// from a bundle file), the bus store and, through env, the state db.
const stateAgent = `import os
from cortex.bus import publish
def main():
    with open("/app/out/result.txt", "w") as f:
        f.write(os.environ["SECRET_TOKEN"])
    publish(channel="results", payload={"secret": os.environ["SECRET_TOKEN"]})
    print("done", flush=True)
`

func stateManifest(project, secret string) string {
	return "version: \"1\"\nproject: " + project + "\nglobal_capabilities:\n  - bus.durable: [results]\nagents:\n" +
		pyAgent("writer", "w:main", "    env:\n      SECRET_TOKEN: "+secret+"\n"+
			"    capabilities:\n      - filesystem.write: [\"out\"]\n      - bus.publish: [results]\n")
}

// TestStateNotWorldReadable runs projects as a real non-root user (from
// a directory, and from a .cortex file, so the agent writes into the
// daemon's data directory), then walks the whole CORTEX_ROOT and asks
// the kernel, as an unrelated user in group cortex and as the owner,
// what they can read: nothing that holds user data (state.db*, bundles,
// projects/<p>/data, logs, LLM and bus state), except the owner's own
// write grant. Then it loosens the modes as an older cortexd left them,
// checks the walk notices, restarts the daemon and checks it put them
// right and logged each change.
func TestStateNotWorldReadable(t *testing.T) {
	u := daemontest.NewUser(t)
	d := daemontest.Start(t, daemontest.Options{})
	d.OpenToUsers() // the root as "/" is: 0755
	secret := "STATE-SECRET-" + randHex(t)

	dirProj := filepath.Join(u.Home, "fromdir")
	u.Sh(t, u.Home, "mkdir fromdir")
	writeAs(t, u, filepath.Join(dirProj, "cortex.yaml"), stateManifest("fromdir", secret))
	writeAs(t, u, filepath.Join(dirProj, "w.py"), stateAgent)
	d.MustCLIAs(u, dirProj, "run", "-d", ".")

	fileProj := filepath.Join(u.Home, "fromfile")
	u.Sh(t, u.Home, "mkdir fromfile")
	writeAs(t, u, filepath.Join(fileProj, "cortex.yaml"), stateManifest("fromfile", secret))
	writeAs(t, u, filepath.Join(fileProj, "w.py"), stateAgent)
	d.MustCLIAs(u, fileProj, "bundle", "--config", "cortex.yaml", "--output", filepath.Join(u.Home, "p.cortex"))
	d.MustCLIAs(u, u.Home, "run", "-d", filepath.Join(u.Home, "p.cortex"))

	for _, p := range []string{"fromdir", "fromfile"} {
		if a := d.Final(p, "writer", 60*time.Second); a.State != api.Stopped {
			t.Fatalf("%s/writer ended %s (%s):\n%s", p, a.State, a.Reason, d.MustCLI("", "logs", p+"/writer"))
		}
	}
	grant := filepath.Join(d.Root, "var", "lib", "cortex", "projects", "fromfile", "data", "out")
	result := filepath.Join(grant, "result.txt")
	if out, err := runAs(u, "", "cat", result); err != nil || out != secret {
		t.Fatalf("the owner cannot read what her agent wrote (%s): %q %v", result, out, err)
	}
	if b, err := os.ReadFile(filepath.Join(dirProj, "out", "result.txt")); err != nil || string(b) != secret {
		t.Fatalf("the project run from a directory did not write its grant: %q %v", b, err)
	}

	if leaks := readableState(t, d, u, grant); len(leaks) > 0 {
		t.Errorf("readable by users other than root:\n%s", strings.Join(leaks, "\n"))
	}

	// An installation an older cortexd left: its modes loosened.
	d.Stop()
	lib := filepath.Join(d.Root, "var", "lib", "cortex")
	loosen := map[string]os.FileMode{
		lib: 0o755, filepath.Join(lib, "state.db"): 0o644, filepath.Join(lib, "bundles"): 0o755,
		filepath.Join(lib, "projects"): 0o755, filepath.Join(lib, "projects", "fromfile"): 0o755,
		filepath.Join(lib, "projects", "fromfile", "data"): 0o755, grant: 0o755, result: 0o644,
		filepath.Join(lib, "bus"): 0o755, filepath.Join(d.Root, "var", "cache", "cortex"): 0o755,
		filepath.Join(d.Root, "var", "log", "cortex"): 0o755, filepath.Join(d.Root, "var", "log", "cortex", "fromdir"): 0o755,
		filepath.Join(d.Root, "run", "cortex", "agents"): 0o755,
	}
	for p, m := range loosen {
		if err := os.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
	}
	leaks := readableState(t, d, u, grant)
	if len(leaks) == 0 {
		t.Fatal("the walk finds nothing in a loosened installation: it proves nothing")
	}
	t.Logf("loosened as an older cortexd left it, readable by others:\n%s", strings.Join(leaks, "\n"))
	d.StartDaemon()
	log := d.LogText()
	for p := range loosen {
		if p == result {
			continue // in the owner's grant directory, closed to others again: left as she has it
		}
		if !strings.Contains(log, `msg="repaired mode" path=`+p+" ") {
			t.Errorf("the daemon did not log repairing %s", p)
		}
	}
	if leaks := readableState(t, d, u, grant); len(leaks) > 0 {
		t.Errorf("after the repair, readable by users other than root:\n%s", strings.Join(leaks, "\n"))
	}
	if out, err := runAs(u, "", "cat", result); err != nil || out != secret {
		t.Errorf("after the repair the owner cannot read her output: %q %v", out, err)
	}
}

// readableState walks the daemon's root and returns what another user
// can read (a file) or list (a directory) there, beyond what is public:
// the directories above the daemon's own, its config, the shims and SDKs,
// the pid file and the API socket (group cortex is the API). It asks the
// kernel (test -r, as each user): nobody with group cortex, and the
// owner u, who may also read her own grant directory.
func readableState(t *testing.T, d *daemontest.Daemon, u daemontest.User, ownGrant string) []string {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(d.Root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rel := func(p string) string { r, _ := filepath.Rel(d.Root, p); return r }
	public := func(p string) bool {
		r := rel(p)
		switch r {
		case ".", "etc", "var", "var/lib", "var/log", "var/cache", "run", "run/cortex", "usr", "usr/lib",
			"run/cortex/cortexd.pid", "run/cortex/cortexd.sock":
			return true
		}
		return r == "etc/cortex" || strings.HasPrefix(r, "etc/cortex/") || r == "usr/lib/cortex" || strings.HasPrefix(r, "usr/lib/cortex/")
	}
	var leaks []string
	for _, who := range []struct {
		name string
		cred *syscall.Credential
		own  func(string) bool
	}{
		{"nobody+cortex", &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{uint32(u.GroupID)}}, func(string) bool { return false }},
		{"owner " + u.Name, u.Cred(), func(p string) bool { return p == ownGrant || strings.HasPrefix(p, ownGrant+"/") }},
	} {
		cmd := exec.Command("/bin/sh", "-c", `while IFS= read -r p; do if [ -r "$p" ]; then printf '%s\n' "$p"; fi; done`)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: who.cred}
		cmd.Stdin = strings.NewReader(strings.Join(paths, "\n") + "\n")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("probe as %s: %v", who.name, err)
		}
		for _, p := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if p == "" || public(p) || who.own(p) {
				continue
			}
			kind := "file"
			if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
				kind = "directory (listable)"
			} else if err == nil {
				kind = fmt.Sprintf("%v", fi.Mode())
			}
			leaks = append(leaks, fmt.Sprintf("%s: %s %s", who.name, rel(p), kind))
		}
	}
	sort.Strings(leaks)
	return leaks
}
