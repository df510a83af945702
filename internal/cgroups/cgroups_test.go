package cgroups

import (
	"math"
	"path"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/errdefs"
)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
	}{
		{"simple", "cortex", true},
		{"project and agent", "my-swarm/worker_1", true},
		{"dots inside", "v1.2/agent.main", true},
		{"hash parent", "cortex-0a1b2c3d", true},
		{"deep", "a/b/c/d", true},
		{"empty", "", false},
		{"absolute", "/cortex", false},
		{"trailing slash", "cortex/", false},
		{"double slash", "a//b", false},
		{"dot", "a/./b", false},
		{"dotdot", "a/../b", false},
		{"leading dash", "-a", false},
		{"leading dot", ".hidden", false},
		{"space", "a b", false},
		{"colon", "a:b", false},
		{"newline", "a\nb", false},
		{"unicode", "agént", false},
		{"v2 interface file", "cgroup.procs", false},
		{"v1 interface file", "memory.limit_in_bytes", false},
		{"tasks", "p/tasks", false},
		{"release_agent", "release_agent", false},
		{"controller-like but no dot", "memory", true},
		{"long", strings.Repeat("a", 129), false},
		{"max length", strings.Repeat("a", 128), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validName("group", tc.in)
			if tc.ok && err != nil {
				t.Errorf("validName(%q) = %v, want nil", tc.in, err)
			}
			if !tc.ok && !errdefs.IsInvalidArgument(err) {
				t.Errorf("validName(%q) = %v, want InvalidArgument", tc.in, err)
			}
		})
	}
}

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"cortex", "a/b", "a/../b", "/x", "memory.max", "a//b", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if validName("group", s) != nil {
			return
		}
		// Whatever passes must stay below the parent and be a plain
		// relative path that cannot collide with an interface file.
		if path.Clean(s) != s || path.IsAbs(s) || strings.HasPrefix(s, "..") {
			t.Fatalf("accepted %q, which is not a clean relative path", s)
		}
		for _, c := range strings.Split(s, "/") {
			if c == "." || c == ".." || c == "tasks" || strings.HasPrefix(c, "cgroup.") {
				t.Fatalf("accepted %q with component %q", s, c)
			}
		}
	})
}

func TestLimitsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    Limits
		ok   bool
	}{
		{"zero means none", Limits{}, true},
		{"typical", Limits{CPU: 0.5, Memory: 512 << 20, Pids: 256}, true},
		{"smallest cpu", Limits{CPU: 0.01}, true},
		{"many cores", Limits{CPU: 64}, true},
		{"cpu below 1ms quota", Limits{CPU: 0.004}, false},
		{"negative cpu", Limits{CPU: -1}, false},
		{"NaN cpu", Limits{CPU: math.NaN()}, false},
		{"infinite cpu", Limits{CPU: math.Inf(1)}, false},
		{"absurd cpu", Limits{CPU: 1e9}, false},
		{"negative memory", Limits{Memory: -1}, false},
		{"negative pids", Limits{Pids: -5}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.l.Validate()
			if tc.ok && err != nil {
				t.Errorf("Validate(%+v) = %v", tc.l, err)
			}
			if !tc.ok && !errdefs.IsInvalidArgument(err) {
				t.Errorf("Validate(%+v) = %v, want InvalidArgument", tc.l, err)
			}
		})
	}
	if q := (Limits{CPU: 0.2}).quotaUS(); q != 20000 {
		t.Errorf("quota of 0.2 cores = %d us, want 20000", q)
	}
	if q := (Limits{CPU: 1.5}).quotaUS(); q != 150000 {
		t.Errorf("quota of 1.5 cores = %d us, want 150000", q)
	}
}

func TestHostInfoErr(t *testing.T) {
	ok := HostInfo{Mode: "v1", Version: 1, Controllers: []Controller{{Name: "memory", Usable: true}}}
	if err := ok.Err(); err != nil {
		t.Errorf("all usable: %v", err)
	}
	missing := HostInfo{Mode: "v2", Version: 2, Controllers: []Controller{{Name: "memory", Usable: true}, {Name: "pids", Reason: "not delegated"}}}
	if err := missing.Err(); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "pids: not delegated") {
		t.Errorf("pids missing: %v", err)
	}
	if err := (HostInfo{Mode: "none"}).Err(); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("none: %v", err)
	}
}
