package cgroups

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/kerneltest"
)

func TestLayoutFromMounts(t *testing.T) {
	for _, tc := range []struct {
		file    string
		v1      map[string]string
		v2Mount string
	}{
		{"hybrid.txt", map[string]string{
			"cpu": "/sys/fs/cgroup/cpu", "cpuacct": "/sys/fs/cgroup/cpuacct", "cpuset": "/sys/fs/cgroup/cpuset",
			"memory": "/sys/fs/cgroup/memory", "devices": "/sys/fs/cgroup/devices", "freezer": "/sys/fs/cgroup/freezer",
			"blkio": "/sys/fs/cgroup/blkio", "pids": "/sys/fs/cgroup/pids", "name=systemd": "/sys/fs/cgroup/systemd",
		}, "/sys/fs/cgroup/unified"},
		{"unified.txt", map[string]string{}, "/sys/fs/cgroup"},
		{"legacy-comounted.txt", map[string]string{
			"name=systemd": "/sys/fs/cgroup/systemd", "cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
			"net_cls": "/sys/fs/cgroup/net_cls,net_prio", "net_prio": "/sys/fs/cgroup/net_cls,net_prio",
			"memory": "/sys/fs/cgroup/memory", // the first mount wins over the bind mount
			"pids":   "/sys/fs/cgroup/pids", "freezer": "/sys/fs/cgroup/freezer",
		}, ""},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", "mountinfo", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			mounts, err := parseMountinfo(f)
			if err != nil {
				t.Fatal(err)
			}
			l := layoutFromMounts(mounts)
			if diff := cmp.Diff(tc.v1, l.v1Point); diff != "" {
				t.Errorf("v1 mounts (-want +got):\n%s", diff)
			}
			if l.v2Mount != tc.v2Mount {
				t.Errorf("v2 mount = %q, want %q", l.v2Mount, tc.v2Mount)
			}
		})
	}
}

func TestContainerdRoot(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"memory", "cpu,cpuacct", "elsewhere"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("cpu,cpuacct", filepath.Join(dir, "cpu")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, ctrl, point string
		ok                bool
	}{
		{"own directory", "memory", filepath.Join(dir, "memory"), true},
		{"co-mounted through a symlink", "cpu", filepath.Join(dir, "cpu,cpuacct"), true},
		{"co-mounted without a symlink", "cpuacct", filepath.Join(dir, "cpu,cpuacct"), false},
		{"mounted under another name", "pids", filepath.Join(dir, "elsewhere"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, err := containerdRoot(tc.ctrl, tc.point)
			if tc.ok && (err != nil || root != dir) {
				t.Errorf("containerdRoot = %q, %v; want %q", root, err, dir)
			}
			if !tc.ok && err == nil {
				t.Errorf("containerdRoot = %q, want an error", root)
			}
		})
	}
}

func TestInCgroup(t *testing.T) {
	const v1 = "9:name=systemd:/\n8:pids:/cortex/p/a\n4:memory:/cortex/p/a/sub\n2:cpu,cpuacct:/cortex/p/ab\n0::/\n"
	const v2 = "0::/cortex/p/a\n"
	for _, tc := range []struct {
		name, file, ctrl, want string
		in                     bool
	}{
		{"v1 exact", v1, "pids", "/cortex/p/a", true},
		{"v1 below", v1, "memory", "/cortex/p/a", true},
		{"v1 sibling with the same prefix", v1, "cpu", "/cortex/p/a", false},
		{"v1 co-mounted controller", v1, "cpuacct", "/cortex/p/ab", true},
		{"v1 controller absent", v1, "freezer", "/cortex/p/a", false},
		{"v1 file, unified asked", v1, "", "/cortex/p/a", false},
		{"v2", v2, "", "/cortex/p/a", true},
		{"v2 parent only", v2, "", "/cortex/p/a/b", false},
		{"garbage", "nonsense\n::\n", "", "/x", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := inCgroup(tc.file, tc.ctrl, tc.want); got != tc.in {
				t.Errorf("inCgroup(%q, %q) = %v, want %v", tc.ctrl, tc.want, got, tc.in)
			}
		})
	}
}

func FuzzInCgroup(f *testing.F) {
	f.Add("4:memory:/cortex/p/a\n0::/x\n", "memory", "/cortex/p/a")
	f.Add("0::/cortex/p/a\n", "", "/cortex/p")
	f.Fuzz(func(t *testing.T, file, ctrl, want string) {
		if inCgroup(file, ctrl, want) && !strings.Contains(file, want) {
			t.Fatalf("member of %q though the file never names it", want)
		}
	})
}

func TestProbe(t *testing.T) {
	kerneltest.RequireRoot(t) // usable controllers need writable cgroup directories
	h := Probe()
	t.Logf("%+v", h)
	if h.Mode == "hybrid" && h.Version != 1 {
		t.Errorf("hybrid host: Version = %d, want 1 (the v1 driver)", h.Version)
	}
	if h.Mode == "v2" && h.Version != 2 && h.Version != 0 {
		t.Errorf("unified host: Version = %d", h.Version)
	}
	allUsable := true
	for _, c := range h.Controllers {
		if !c.Usable && c.Reason == "" {
			t.Errorf("controller %s unusable without a reason", c.Name)
		}
		allUsable = allUsable && c.Usable
	}
	if (h.Err() == nil) != (allUsable && h.Version != 0) {
		t.Errorf("Err() = %v though all usable = %v", h.Err(), allUsable)
	}
	if h.Version != 0 && h.Swap == "" {
		t.Error("Swap is empty")
	}
}

func TestNew(t *testing.T) {
	kerneltest.RequireRoot(t)
	kerneltest.Require(t, "usable cgroups", func() error {
		if Probe().Version == 0 {
			return errdefs.New(errdefs.FailedPrecondition, "Probe found no usable cgroup driver")
		}
		return nil
	})
	for _, tc := range []struct {
		name   string
		parent string
	}{
		{"empty", ""},
		{"absolute", "/cortex"},
		{"escapes", "../cortex"},
		{"interface file", "cgroup.procs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.parent, nil); !errdefs.IsInvalidArgument(err) {
				t.Errorf("New(%q) = %v, want InvalidArgument", tc.parent, err)
			}
		})
	}
	m, err := New(randomParent(t), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	cleanupParent(t, m)
	if got, want := m.Version(), Probe().Version; got != want {
		t.Errorf("New picked v%d, Probe says v%d", got, want)
	}
	// A group made through New has swap off.
	g, err := m.Create("p/a", Limits{Memory: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	assertSwapOff(t, g, 32<<20)
	if err := g.Delete(); err != nil {
		t.Fatal(err)
	}
}

func TestLeaves(t *testing.T) {
	for _, tc := range []struct {
		name string
		dirs []string
		want []string
	}{
		{"none", nil, nil},
		{"flat", []string{"b", "a"}, []string{"a", "b"}},
		{"nested", []string{"p", "p/a", "p/b", "q"}, []string{"p/a", "p/b", "q"}},
		{"sibling sorting between parent and child", []string{"p", "p-x", "p.y", "p/a"}, []string{"p-x", "p.y", "p/a"}},
		{"union of hierarchies", []string{"p", "p", "p/a", "p/b"}, []string{"p/a", "p/b"}},
		{"deep", []string{"a", "a/b", "a/b/c"}, []string{"a/b/c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, leaves(tc.dirs)); diff != "" {
				t.Errorf("leaves(%q) (-want +got):\n%s", tc.dirs, diff)
			}
		})
	}
}
