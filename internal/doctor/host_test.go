package doctor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/cgroups"
	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/kerneltest"
	"github.com/cortexrt/cortex/internal/txn"
	"golang.org/x/sys/unix"
)

type fakeState struct {
	agents  []AgentInfo
	bundles []string
}

func (f *fakeState) Agents(context.Context) ([]AgentInfo, error)  { return f.agents, nil }
func (f *fakeState) BundleDirs(context.Context) ([]string, error) { return f.bundles, nil }
func (f *fakeState) Hold() func()                                 { return func() {} }

func testHost(t *testing.T) (*Host, *fakeState) {
	t.Helper()
	root := t.TempDir()
	p := config.NewPaths(root)
	if err := p.MkdirAll(); err != nil {
		t.Fatal(err)
	}
	st := &fakeState{}
	return &Host{Paths: p, Config: config.Default(), State: st, CgroupParent: "cortex-doctortest"}, st
}

func one(t *testing.T, c Check) Result {
	t.Helper()
	return runOne(context.Background(), c, 0+10e9)
}

func staleSocket(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
}

// repairAndUndo runs Repair for one check, checks fixed() afterwards and
// broken() after undoing the transaction.
func repairAndUndo(t *testing.T, h *Host, id string, fixed, broken func() error) {
	t.Helper()
	store, err := txn.Open(filepath.Join(h.Paths.LibDir, "ops", "transactions"))
	if err != nil {
		t.Fatal(err)
	}
	checks := Builtin(h)
	plan, err := Repair(context.Background(), checks, Options{Only: []string{id}}, store, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Txns) != 1 || len(plan.Txns[0].Changes) == 0 || plan.Txns[0].Changes[0].Applied {
		t.Fatalf("%s dry run: %+v (failed %+v)", id, plan.Txns, plan.Failed)
	}
	if err := broken(); err != nil {
		t.Fatalf("%s: the dry run changed something: %v", id, err)
	}
	res, err := Repair(context.Background(), checks, Options{Only: []string{id}}, store, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Txns) != 1 || len(res.Failed) > 0 {
		t.Fatalf("%s repair: txns %+v failed %+v", id, res.Txns, res.Failed)
	}
	if err := fixed(); err != nil {
		t.Fatalf("%s after repair: %v", id, err)
	}
	after, _ := Run(context.Background(), checks, Options{Only: []string{id}})
	if after[len(after)-1].Status != api.CheckOK {
		t.Errorf("%s after repair: %+v", id, after)
	}
	if _, err := store.Undo(res.Txns[0].ID, false); err != nil {
		t.Fatal(err)
	}
	if err := broken(); err != nil {
		t.Fatalf("%s after undo: %v", id, err)
	}
}

func modeIs(p string, want os.FileMode) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if fi.Mode().Perm() != want {
		return errors.New(p + " has mode " + fi.Mode().Perm().String())
	}
	return nil
}

func TestFilePerms(t *testing.T) {
	h, _ := testHost(t)
	key := filepath.Join(h.Paths.Root, "etc", "cortex", "keys", "openai.key")
	write := func(p string, m os.FileMode) {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), m); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
	}
	write(key, 0o600)
	write(h.Paths.ConfigFile, 0o644)
	h.Config.LLM.Providers = []config.LLMProvider{{Name: "openai", Kind: "openai", APIKeyFile: key}}
	if r := one(t, h.checkFilePerms()); r.Status != api.CheckOK {
		t.Fatalf("healthy: %+v", r)
	}
	write(key, 0o644)
	write(h.Paths.ConfigFile, 0o666)
	r := one(t, h.checkFilePerms())
	if r.Status != api.CheckFail || !strings.Contains(r.Evidence, "llm key (openai) "+key+": mode 0644, want 0600") ||
		!strings.Contains(r.Evidence, "config "+h.Paths.ConfigFile+": mode 0666, want 0644") || r.Fix.Kind != api.FixAuto {
		t.Fatalf("loosened: %+v", r)
	}
	repairAndUndo(t, h, "perms.files",
		func() error {
			if err := modeIs(key, 0o600); err != nil {
				return err
			}
			return modeIs(h.Paths.ConfigFile, 0o644)
		},
		func() error {
			if err := modeIs(key, 0o644); err != nil {
				return err
			}
			return modeIs(h.Paths.ConfigFile, 0o666)
		})
}

func TestStaleSocketsAndOrphanBundles(t *testing.T) {
	h, st := testHost(t)
	ghost := filepath.Join(h.Paths.RunDir, "agents", "ghost", "a", "bus", "bus.sock")
	staleSocket(t, ghost)
	// An active agent's socket is not stale even when no one listens
	// (its daemon is down; the next one serves it again).
	staleSocket(t, filepath.Join(h.Paths.RunDir, "agents", "live", "a", "bus", "bus.sock"))
	st.agents = []AgentInfo{{Project: "live", Agent: "a", Active: true}, {Project: "ghost", Agent: "a"}}
	r := one(t, h.checkStaleSockets())
	if r.Status != api.CheckWarn || !strings.Contains(r.Evidence, ghost) || strings.Contains(r.Evidence, "live") {
		t.Fatalf("stale sockets: %+v", r)
	}
	isSocket := func() error {
		fi, err := os.Lstat(ghost)
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSocket == 0 {
			return errors.New("not a socket")
		}
		return nil
	}
	repairAndUndo(t, h, "stale.sockets",
		func() error {
			if _, err := os.Lstat(ghost); !errors.Is(err, os.ErrNotExist) {
				return errors.New("still there")
			}
			return nil
		}, isSocket)

	used := filepath.Join(h.Paths.LibDir, "bundles", "aaaa")
	orphan := filepath.Join(h.Paths.LibDir, "bundles", "bbbb")
	for _, d := range []string{used, orphan} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "cortex.yaml"), []byte("project: p\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	st.bundles = []string{used}
	r = one(t, h.checkOrphanBundles())
	if r.Status != api.CheckWarn || !strings.Contains(r.Evidence, orphan) || strings.Contains(r.Evidence, used) {
		t.Fatalf("orphans: %+v", r)
	}
	repairAndUndo(t, h, "bundles.orphaned",
		func() error {
			if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
				return errors.New("orphan still there")
			}
			_, err := os.Stat(used)
			return err
		},
		func() error {
			_, err := os.Stat(filepath.Join(orphan, "cortex.yaml"))
			return err
		})

	h.State = nil
	if r := one(t, h.checkOrphanBundles()); r.Status != api.CheckSkip || !strings.Contains(r.Evidence, "state is unavailable") {
		t.Errorf("no state: %+v", r)
	}
}

// TestStaleCgroups: an empty group no agent owns is found in every
// hierarchy and removed, and undo makes it again; a group holding a
// process is reported, never removed.
func TestStaleCgroups(t *testing.T) {
	kerneltest.RequireRoot(t)
	kerneltest.Require(t, "cgroups", func() error { return cgroups.Probe().Err() })
	h, st := testHost(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	h.CgroupParent = "cortex-doctortest-" + hex.EncodeToString(b[:])
	parents := cgroups.ParentDirs(h.CgroupParent)
	if len(parents) == 0 {
		t.Fatal("no cgroup hierarchy")
	}
	t.Cleanup(func() {
		for _, p := range parents {
			for _, d := range []string{"ghost/a", "live/a", "ghost", "live", ""} {
				_ = unix.Rmdir(filepath.Join(p, d))
			}
		}
	})
	for _, p := range parents {
		for _, d := range []string{"ghost/a", "live/a"} {
			if err := os.MkdirAll(filepath.Join(p, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	st.agents = []AgentInfo{{Project: "live", Agent: "a", Active: true}}
	r := one(t, h.checkStaleCgroups())
	if r.Status != api.CheckWarn || !strings.Contains(r.Evidence, "ghost/a") || strings.Contains(r.Evidence, "live") {
		t.Fatalf("stale cgroups: %+v", r)
	}
	exists := func(want bool) func() error {
		return func() error {
			for _, p := range parents {
				for _, d := range []string{"ghost", "ghost/a"} {
					_, err := os.Stat(filepath.Join(p, d))
					if want && err != nil || !want && err == nil {
						return errors.New(filepath.Join(p, d) + ": exists is not " + map[bool]string{true: "true", false: "false"}[want])
					}
				}
				if _, err := os.Stat(filepath.Join(p, "live", "a")); err != nil {
					return err
				}
			}
			return nil
		}
	}
	repairAndUndo(t, h, "stale.cgroups", exists(false), exists(true))
}

// TestDiskFull: a nearly full filesystem under the log directory fails
// disk.space (a small tmpfs stands in for a full disk).
func TestDiskFull(t *testing.T) {
	kerneltest.RequireRoot(t)
	h, _ := testHost(t)
	if r := one(t, h.checkDisk()); r.Status == api.CheckFail {
		t.Logf("the test host's disk itself is short: %s", r.Evidence)
	}
	if err := unix.Mount("tmpfs", h.Paths.LogDir, "tmpfs", 0, "size=1m"); err != nil {
		kerneltest.Missing(t, "mount tmpfs: "+err.Error())
	}
	t.Cleanup(func() { _ = unix.Unmount(h.Paths.LogDir, unix.MNT_DETACH) })
	if err := os.WriteFile(filepath.Join(h.Paths.LogDir, "fill"), make([]byte, 1<<20), 0o600); err == nil {
		t.Log("filled")
	}
	r := one(t, h.checkDisk())
	if r.Status != api.CheckFail || !strings.Contains(r.Evidence, h.Paths.LogDir+" (tmpfs") || r.Fix == nil || r.Fix.Kind != api.FixManual {
		t.Fatalf("full log disk: %+v", r)
	}
}

// TestHostChecksOnThisHost runs every built-in check on this host and a
// fresh root: none may fail for a reason of the root.
func TestHostChecksOnThisHost(t *testing.T) {
	kerneltest.RequireRoot(t)
	h, _ := testHost(t)
	res, err := Run(context.Background(), Builtin(h), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res {
		t.Logf("%-22s %-4s %s", c.ID, c.Status, c.Evidence)
		if c.Status == api.CheckFail && !strings.HasPrefix(c.ID, "kernel.") {
			t.Errorf("%s failed on a fresh root: %s", c.ID, c.Evidence)
		}
	}
}
