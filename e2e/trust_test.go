package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/daemon/daemontest"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// thiefAgent is issue 14's reproducer: its first run lists its read grant
// and waits until the test has swapped something, then fails to be
// restarted; a restart that got through would print root's secret and
// plant a file in the write grant.
const thiefAgent = `import json, os, sys, time
def main():
    if os.environ["CORTEX_RUN"] == "0":
        print(json.dumps({"msg": "run0", "pub": sorted(os.listdir("/app/pub"))}), flush=True)
        while not os.path.exists("/app/pub/SWAPPED"):
            time.sleep(0.02)
        sys.exit(1)
    try:
        print("LEAK " + open("/app/pub/secret.txt").read(), flush=True)
    except OSError as e:
        print(json.dumps({"msg": "read refused", "error": str(e)}), flush=True)
    try:
        with open("/app/drop/planted", "w") as f:
            f.write("x")
        print("PLANTED", flush=True)
    except OSError as e:
        print(json.dumps({"msg": "plant refused", "error": str(e)}), flush=True)
    time.sleep(3600)
`

func thiefManifest(project string) string {
	return manifest(project, pyAgent("thief", "t:main",
		"    restart_policy: on-failure\n    max_restarts: 3\n"+
			"    capabilities:\n      - filesystem.read: [\"pub\"]\n      - filesystem.write: [\"drop\"]\n"))
}

// TestProjectDirTrust runs issue 14's reproducer as a real user who is
// not root but may use the daemon (a member of group cortex): her project
// reads pub and writes drop; once it runs she swaps what its path leads
// to (the directory itself for a symlink to a root-only directory, an
// intermediate component, a grant inside it; root bind-mounts over it)
// and lets the agent restart. Every restart must be refused with a clear
// reason in list, inspect, the agent's log and the daemon's log (Warn,
// with project, agent, uid and path), root's secret must not reach the
// agent, and nothing may be created, chowned or changed in root's
// directory.
func TestProjectDirTrust(t *testing.T) {
	u := daemontest.NewUser(t)
	d := daemontest.Start(t, daemontest.Options{})
	d.OpenToUsers()

	// Root's vault: she cannot enter it (0700), though pub inside is 0755.
	secret := "TOP-SECRET-" + randHex(t)
	vault := filepath.Join(u.Base, "vault")
	for _, dir := range []string{"pub", "proj/pub"} {
		if err := os.MkdirAll(filepath.Join(vault, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(vault, dir, "secret.txt"), []byte(secret+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(vault, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(vault, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := runAs(u, "", "cat", filepath.Join(vault, "pub", "secret.txt")); err == nil {
		t.Fatalf("the test user reads the vault directly (%s): the test proves nothing", out)
	}
	before := tree(t, vault)

	cases := []struct {
		name string
		// swap changes what the project's path leads to, then creates
		// SWAPPED in the directory the first run's /app/pub shows.
		swap func(t *testing.T, work, proj string)
		// why must appear in the agent's reason.
		why string
		// path is the one the refusal names, relative to work.
		path string
	}{
		{
			name: "dir-symlink",
			swap: func(t *testing.T, work, proj string) {
				u.Sh(t, work, fmt.Sprintf("mv proj proj.old && ln -s %s proj && touch proj.old/pub/SWAPPED", vault))
			},
			why: "project directory changed since the project was created: WORK/proj is a symlink (to " + vault + ")",
		},
		{
			name: "intermediate-symlink",
			swap: func(t *testing.T, work, proj string) {
				u.Sh(t, filepath.Dir(work), fmt.Sprintf("mv work work.old && ln -s %s work && touch work.old/proj/pub/SWAPPED", vault))
			},
			why: "WORK/proj: WORK is a symlink (to " + vault + ")",
		},
		{
			name: "replaced-dir",
			swap: func(t *testing.T, work, proj string) {
				u.Sh(t, work, "mv proj proj.old && mkdir -p proj/pub && cp proj.old/cortex.yaml proj.old/t.py proj/ && touch proj.old/pub/SWAPPED")
			},
			why: "WORK/proj: it is another directory now",
		},
		{
			name: "bind-mount",
			swap: func(t *testing.T, work, proj string) {
				// Root (an admin, or a mount helper) mounts the vault
				// over the project; the first run's pub is reached
				// through a descriptor opened before.
				pub, err := os.Open(filepath.Join(proj, "pub"))
				if err != nil {
					t.Fatal(err)
				}
				defer pub.Close()
				bindMount(t, vault, proj)
				fd, err := unix.Openat(int(pub.Fd()), "SWAPPED", unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
				if err != nil {
					t.Fatal(err)
				}
				unix.Close(fd)
			},
			why: "WORK/proj: it is another directory now",
		},
		{
			name: "bind-mount-same-dir",
			swap: func(t *testing.T, work, proj string) {
				// The same directory mounted over itself: device and
				// inode stay, only the mount differs.
				bindMount(t, proj, proj)
				u.Sh(t, proj, "touch pub/SWAPPED")
			},
			why: "WORK/proj: it is reached through another mount now",
		},
		{
			name: "grant-symlink",
			swap: func(t *testing.T, work, proj string) {
				u.Sh(t, proj, fmt.Sprintf("mv pub pub.old && ln -s %s/pub pub && touch pub.old/SWAPPED", vault))
			},
			why: `filesystem grant "pub" resolves outside the project directory`,
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			project := fmt.Sprintf("thief%d", i)
			work := filepath.Join(u.Home, tc.name, "work")
			proj := filepath.Join(work, "proj")
			u.Sh(t, u.Home, "mkdir -p "+filepath.Join(tc.name, "work", "proj", "pub")+" && echo mine > "+filepath.Join(proj, "pub", "mine.txt"))
			writeAs(t, u, filepath.Join(proj, "cortex.yaml"), thiefManifest(project))
			writeAs(t, u, filepath.Join(proj, "t.py"), thiefAgent)

			d.MustCLIAs(u, proj, "run", "-d", ".")
			d.WaitAgent(project, "thief", 30*time.Second, "the first run", func(a api.AgentStatus) bool { return a.State == api.Running })
			// The first run sees its read grant.
			waitLog(t, d, u, project+"/thief", `run0 pub=["mine.txt"]`)
			// The write grant was made in her directory, hers.
			if fi, err := os.Stat(filepath.Join(proj, "drop")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != uint32(u.UID) || fi.Mode().Perm() != 0o755 {
				t.Fatalf("write grant %s: %v %v, want a 0755 directory owned by uid %d", filepath.Join(proj, "drop"), fi, err, u.UID)
			}

			tc.swap(t, work, proj)

			a := d.Final(project, "thief", 30*time.Second)
			why := strings.ReplaceAll(tc.why, "WORK", work)
			var list []api.AgentStatus
			daemontest.JSON(t, d.MustCLIAs(u, "", "list", "-a", "--json", project), &list)
			if len(list) != 1 || list[0].State != api.Failed || !strings.HasPrefix(list[0].Reason, "StartError: ") || !strings.Contains(list[0].Reason, why) {
				t.Errorf("cortex list: %+v\nwant failed, reason StartError: ... %s", list, why)
			}
			if len(list) == 1 {
				t.Logf("cortex list reason: %s", list[0].Reason)
			}
			if a.Restarts != 1 || a.RestartPending {
				t.Errorf("restarts %d, pending %v: a refused start must not be retried", a.Restarts, a.RestartPending)
			}
			var ins []api.Inspection
			daemontest.JSON(t, d.MustCLIAs(u, "", "inspect", project+"/thief"), &ins)
			if len(ins) != 1 || ins[0].Reason != list[0].Reason {
				t.Errorf("cortex inspect reason: %+v, want %q", ins, list[0].Reason)
			}
			logs := d.MustCLIAs(u, "", "logs", project+"/thief")
			if !strings.Contains(logs, why) || !strings.Contains(logs, "start refused; not restarting") {
				t.Errorf("the agent's log does not say why the start was refused:\n%s", logs)
			}
			if strings.Contains(logs, secret) || strings.Contains(logs, "LEAK") || strings.Contains(logs, "PLANTED") {
				t.Errorf("a restart got through:\n%s", logs)
			}
			refusal := regexp.MustCompile(`level=WARN msg="start refused" (?:subsystem=\S+ )?project=` + project + ` agent=thief uid=` + fmt.Sprint(u.UID) + ` path=\S+`)
			if !refusal.MatchString(d.LogText()) {
				t.Errorf("the daemon log lacks the refusal (%s):\n%s", refusal, grepLines(d.LogText(), project))
			}
			if diff := cmp.Diff(before, tree(t, vault)); diff != "" {
				t.Errorf("root's vault changed (-before +after):\n%s", diff)
			}
		})
	}

	// At creation: a project directory she does not own is refused,
	// also when she names it through a symlink of her own.
	t.Run("not-owner", func(t *testing.T) {
		rootProj := filepath.Join(u.Base, "rootproj")
		if err := os.MkdirAll(rootProj, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, body := range map[string]string{"cortex.yaml": thiefManifest("rootproj"), "t.py": thiefAgent} {
			if err := os.WriteFile(filepath.Join(rootProj, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		u.Sh(t, u.Home, "ln -s "+rootProj+" rootlink")
		for _, dir := range []string{rootProj, filepath.Join(u.Home, "rootlink")} {
			r := d.CLIAs(u, dir, "run", "-d", ".")
			if r.Code == 0 || !strings.Contains(r.Stderr, "source dir "+rootProj+" is not owned by uid "+fmt.Sprint(u.UID)) {
				t.Errorf("run from %s: exit %d, stderr:\n%s", dir, r.Code, r.Stderr)
			}
		}
		if _, ok := d.Agent("rootproj", "thief"); ok {
			t.Error("the refused project exists")
		}
		if _, err := os.Stat(filepath.Join(rootProj, "drop")); err == nil {
			t.Error("the refused project's write grant was created")
		}
	})
}

func randHex(t *testing.T) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// runAs runs a program as u.
func runAs(u daemontest.User, dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.Cred()}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func writeAs(t *testing.T, u daemontest.User, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, u.UID, u.GID); err != nil {
		t.Fatal(err)
	}
}

// bindMount mounts src over dst until the test ends.
func bindMount(t *testing.T, src, dst string) {
	t.Helper()
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s on %s: %v", src, dst, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dst, unix.MNT_DETACH) })
}

// waitLog waits until the agent's log holds want.
func waitLog(t *testing.T, d *daemontest.Daemon, u daemontest.User, ref, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := d.MustCLIAs(u, "", "logs", ref)
		if strings.Contains(out, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: log lacks %q after 30s:\n%s", ref, want, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tree lists every entry under dir with its owner and mode.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		out = append(out, fmt.Sprintf("%s %d:%d %v", strings.TrimPrefix(p, dir), st.Uid, st.Gid, fi.Mode()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
