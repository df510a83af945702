package cgroups

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/kerneltest"
)

// driver is one implementation the host can provide.
type driver struct {
	name string
	// newManager returns a Manager for parent whose groups are all
	// removed when the test ends.
	newManager func(t testing.TB, parent string) Manager
	// noLimits, when set, says why the ceilings cannot be tested.
	noLimits string
}

// drivers lists every driver this host can run: v1 where the v1 memory
// hierarchy is mounted, v2 wherever cgroup2 is mounted (on a hybrid host
// that is the controller-less /sys/fs/cgroup/unified).
func drivers(t testing.TB) []driver {
	t.Helper()
	l, err := detect()
	if err != nil {
		t.Fatal(err)
	}
	var out []driver
	if _, ok := l.v1Point["memory"]; ok && l.mode != "v2" {
		out = append(out, driver{name: "v1", newManager: func(t testing.TB, parent string) Manager {
			m, err := newV1(parent, testLogger(t), l)
			if err != nil {
				t.Fatal(err)
			}
			cleanupParent(t, m)
			return m
		}})
		for _, c := range v1Wanted {
			if _, ok := l.v1Point[c]; !ok {
				out[len(out)-1].noLimits = "this host's cgroup v1 lacks the " + c + " controller"
			}
		}
	}
	if l.v2Mount != "" {
		d := driver{name: "v2", newManager: func(t testing.TB, parent string) Manager {
			m, err := newV2(parent, testLogger(t), l.v2Mount, l.v2Root)
			if err != nil {
				t.Fatal(err)
			}
			cleanupParent(t, m)
			return m
		}}
		avail := readControllers(l.v2Mount)
		for _, c := range v2Wanted {
			if !strings.Contains(" "+strings.Join(avail, " ")+" ", " "+c+" ") {
				d.noLimits = fmt.Sprintf("this host's cgroup mode (%s) lacks the v2 controllers: %s offers %q, the limits need %v", l.mode, l.v2Mount, avail, v2Wanted)
				break
			}
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		kerneltest.Missing(t, "no cgroup v1 memory hierarchy and no cgroup2 mount")
	}
	return out
}

func TestConformance(t *testing.T) {
	kerneltest.RequireRoot(t)
	for _, d := range drivers(t) {
		t.Run(d.name, func(t *testing.T) { conformance(t, d) })
	}
}

// conformance is the suite every driver must pass.
func conformance(t *testing.T, d driver) {
	needLimits := func(t *testing.T) {
		t.Helper()
		if d.noLimits != "" {
			// A property of the host's mode, not a missing requirement.
			t.Skip(d.noLimits)
		}
	}

	// RemoveParent removes an empty parent from every hierarchy and
	// refuses, removing nothing, while a group (a live agent's, say) is
	// left under it.
	t.Run("RemoveParent", func(t *testing.T) {
		m := d.newManager(t, randomParent(t))
		g, err := m.Create("proj/a", Limits{})
		if err != nil {
			t.Fatal(err)
		}
		p := startHelper(t, "sleep", "")
		if err := g.AddProc(p.pid()); err != nil {
			t.Fatal(err)
		}
		if err := m.RemoveParent(); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("RemoveParent with a live group = %v, want FailedPrecondition", err)
		}
		for _, dir := range append(groupDirs(t, m, "."), groupDirs(t, m, "proj/a")...) {
			if _, err := os.Stat(dir); err != nil {
				t.Errorf("after a refused RemoveParent: %v", err)
			}
		}
		assertMember(t, m, "proj/a", p.pid())
		if err := g.Delete(); err != nil {
			t.Fatal(err)
		}
		if err := m.RemoveParent(); err != nil {
			t.Fatalf("RemoveParent of an empty parent: %v", err)
		}
		for _, dir := range groupDirs(t, m, ".") {
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("parent %s still there: %v", dir, err)
			}
		}
		if err := m.RemoveParent(); err != nil {
			t.Errorf("RemoveParent of an absent parent: %v", err)
		}
	})

	t.Run("Lifecycle", func(t *testing.T) {
		m := d.newManager(t, randomParent(t))
		a, err := m.Create("proj/a", Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if a.Name() != "proj/a" {
			t.Errorf("Name() = %q", a.Name())
		}
		if fi, err := os.Stat(a.Path()); err != nil || !fi.IsDir() {
			t.Errorf("Path() %s is not a directory: %v", a.Path(), err)
		}
		for _, dir := range groupDirs(t, m, "proj/a") {
			if _, err := os.Stat(dir); err != nil {
				t.Errorf("group directory missing after Create: %v", err)
			}
		}
		if _, err := m.Create("proj/a", Limits{}); !errdefs.IsAlreadyExists(err) {
			t.Errorf("second Create = %v, want AlreadyExists", err)
		}
		loaded, err := m.Load("proj/a")
		if err != nil {
			t.Fatal(err)
		}
		if loaded.Path() != a.Path() {
			t.Errorf("Load path %s != Create path %s", loaded.Path(), a.Path())
		}
		if _, err := m.Load("proj/missing"); !errdefs.IsNotFound(err) {
			t.Errorf("Load(missing) = %v, want NotFound", err)
		}
		if _, err := m.Create("proj/b", Limits{}); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Create("other", Limits{}); err != nil {
			t.Fatal(err)
		}
		listIs(t, m, "proj/a", "proj/b", "other")

		if err := loaded.Delete(); err != nil {
			t.Fatal(err)
		}
		assertGone(t, m, "proj/a")
		if err := a.Delete(); err != nil {
			t.Errorf("second Delete = %v, want nil (idempotent)", err)
		}
		if _, err := m.Load("proj/a"); !errdefs.IsNotFound(err) {
			t.Errorf("Load after Delete = %v, want NotFound", err)
		}
		if _, err := a.Procs(); !errdefs.IsNotFound(err) {
			t.Errorf("Procs after Delete = %v, want NotFound", err)
		}
		if err := a.AddProc(os.Getpid()); !errdefs.IsNotFound(err) {
			t.Errorf("AddProc after Delete = %v, want NotFound", err)
		}
		listIs(t, m, "other", "proj/b")

		b, _ := m.Load("proj/b")
		if err := b.Delete(); err != nil {
			t.Fatal(err)
		}
		// The emptied intermediate directory goes too.
		for _, dir := range groupDirs(t, m, "proj") {
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("%s left after its last group was deleted (%v)", dir, err)
			}
		}
		listIs(t, m, "other")
	})

	t.Run("InvalidArguments", func(t *testing.T) {
		m := d.newManager(t, randomParent(t))
		for _, tc := range []struct {
			name   string
			group  string
			limits Limits
		}{
			{"empty", "", Limits{}},
			{"absolute", "/abs", Limits{}},
			{"dotdot", "a/../b", Limits{}},
			{"double slash", "a//b", Limits{}},
			{"interface file", "memory.max", Limits{}},
			{"tasks", "p/tasks", Limits{}},
			{"space", "a b", Limits{}},
			{"negative memory", "ok", Limits{Memory: -1}},
			{"tiny cpu", "ok", Limits{CPU: 0.001}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if _, err := m.Create(tc.group, tc.limits); !errdefs.IsInvalidArgument(err) {
					t.Errorf("Create(%q, %+v) = %v, want InvalidArgument", tc.group, tc.limits, err)
				}
			})
		}
		listIs(t, m)
	})

	t.Run("AddProcAndProcs", func(t *testing.T) {
		m := d.newManager(t, randomParent(t))
		g, err := m.Create("p/a", Limits{})
		if err != nil {
			t.Fatal(err)
		}
		// sh forks two sleeps only after it is in the group.
		p := startCmd(t, "/bin/sh", "-c", "read x; sleep 60 & sleep 60 & wait")
		if err := g.AddProc(p.pid()); err != nil {
			t.Fatal(err)
		}
		procs, err := g.Procs()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]int{p.pid()}, procs); diff != "" {
			t.Errorf("Procs after AddProc (-want +got):\n%s", diff)
		}
		assertMember(t, m, "p/a", p.pid())
		p.release(t)
		eventually(t, 10*time.Second, "the two children join the group", func() bool {
			procs, _ := g.Procs()
			return len(procs) == 3
		})
		procs, _ = g.Procs()
		for _, pid := range procs {
			assertMember(t, m, "p/a", pid)
		}
		if err := g.AddProc(0); !errdefs.IsInvalidArgument(err) {
			t.Errorf("AddProc(0) = %v, want InvalidArgument", err)
		}
		if err := g.AddProc(1 << 30); !errdefs.IsNotFound(err) {
			t.Errorf("AddProc(no such pid) = %v, want NotFound", err)
		}
	})

	t.Run("Kill", func(t *testing.T) {
		m := d.newManager(t, randomParent(t))
		g, err := m.Create("p/a", Limits{})
		if err != nil {
			t.Fatal(err)
		}
		p := startCmd(t, "/bin/sh", "-c", "read x; sleep 60 & sleep 60 & wait")
		if err := g.AddProc(p.pid()); err != nil {
			t.Fatal(err)
		}
		p.release(t)
		eventually(t, 10*time.Second, "3 processes in the group", func() bool {
			procs, _ := g.Procs()
			return len(procs) == 3
		})
		if err := g.Kill(); err != nil {
			t.Fatal(err)
		}
		if procs, err := g.Procs(); err != nil || len(procs) != 0 {
			t.Errorf("Procs after Kill = %v, %v; want empty", procs, err)
		}
		if st := p.wait(t, 10*time.Second); !killedBy(st, "killed") {
			t.Errorf("sh ended with %v, want SIGKILL", st)
		}
		if err := g.Kill(); err != nil {
			t.Errorf("Kill of an empty group = %v", err)
		}
		if err := g.Delete(); err != nil {
			t.Fatal(err)
		}
		assertGone(t, m, "p/a")
		if err := g.Kill(); !errdefs.IsNotFound(err) {
			t.Errorf("Kill after Delete = %v, want NotFound", err)
		}
	})

	t.Run("KillForking", func(t *testing.T) {
		variants := []struct {
			name string
			prep func(Manager)
		}{{"default", func(Manager) {}}}
		if d.name == "v2" {
			variants = append(variants, struct {
				name string
				prep func(Manager)
			}{"signal-loop", func(m Manager) { m.(*v2Manager).noCgroupKill = true }})
		}
		for _, v := range variants {
			t.Run(v.name, func(t *testing.T) {
				m := d.newManager(t, randomParent(t))
				v.prep(m)
				g, err := m.Create("p/a", Limits{})
				if err != nil {
					t.Fatal(err)
				}
				// Keeps forking (up to 2000 sleeps) while Kill runs.
				p := startCmd(t, "/bin/sh", "-c", `read x; i=0; while [ $i -lt 2000 ]; do sleep 30 & i=$((i+1)); done; wait`)
				if err := g.AddProc(p.pid()); err != nil {
					t.Fatal(err)
				}
				p.release(t)
				eventually(t, 10*time.Second, "20 processes in the group", func() bool {
					procs, _ := g.Procs()
					return len(procs) >= 20
				})
				if err := g.Kill(); err != nil {
					t.Fatal(err)
				}
				if st := p.wait(t, 10*time.Second); !killedBy(st, "killed") {
					t.Errorf("sh ended with %v, want SIGKILL", st)
				}
				time.Sleep(100 * time.Millisecond)
				if procs, err := g.Procs(); err != nil || len(procs) != 0 {
					t.Errorf("Procs after Kill = %v, %v; want none (nothing forked after)", procs, err)
				}
				if err := g.Delete(); err != nil {
					t.Fatal(err)
				}
				assertGone(t, m, "p/a")
			})
		}
	})

	t.Run("ConcurrentCreate", func(t *testing.T) {
		m := d.newManager(t, randomParent(t))
		errs := make(chan error, 8)
		for range 8 {
			go func() {
				_, err := m.Create("p/same", Limits{})
				errs <- err
			}()
		}
		var created, exist int
		for range 8 {
			switch err := <-errs; {
			case err == nil:
				created++
			case errdefs.IsAlreadyExists(err):
				exist++
			default:
				t.Errorf("Create: %v", err)
			}
		}
		if created != 1 || exist != 7 {
			t.Errorf("8 concurrent Creates: %d created, %d AlreadyExists; want 1 and 7", created, exist)
		}
		listIs(t, m, "p/same")
	})

	t.Run("Orphans", func(t *testing.T) {
		// What a daemon that crashed mid-create or mid-delete leaves
		// behind is found by List and removed through Load and Delete.
		m := d.newManager(t, randomParent(t))
		if _, err := m.Create("p/half-deleted", Limits{}); err != nil {
			t.Fatal(err)
		}
		dirs := groupDirs(t, m, "p/half-deleted")
		if err := os.Remove(dirs[0]); err != nil {
			t.Fatal(err)
		}
		half := groupDirs(t, m, "p/half-created")
		if err := os.MkdirAll(half[len(half)-1], 0o755); err != nil {
			t.Fatal(err)
		}
		want := []string{"p/half-created"}
		if len(dirs) > 1 {
			want = append(want, "p/half-deleted")
		}
		listIs(t, m, want...)
		for _, n := range want {
			g, err := m.Load(n)
			if err != nil {
				t.Fatalf("Load(%s): %v", n, err)
			}
			if err := g.Delete(); err != nil {
				t.Fatalf("Delete(%s): %v", n, err)
			}
			assertGone(t, m, n)
		}
		listIs(t, m)
	})

	t.Run("Freeze", func(t *testing.T) {
		m := d.newManager(t, randomParent(t))
		g, err := m.Create("p/a", Limits{})
		if err != nil {
			t.Fatal(err)
		}
		counter := filepath.Join(t.TempDir(), "counter")
		p := startHelper(t, "count", counter)
		if err := g.AddProc(p.pid()); err != nil {
			t.Fatal(err)
		}
		p.release(t)
		read := func() int64 { n, _ := readInt(counter); return n }
		eventually(t, 10*time.Second, "the counter starts", func() bool { return read() > 2 })

		if err := g.Freeze(); err != nil {
			t.Fatal(err)
		}
		if frozen, err := g.Frozen(); err != nil || !frozen {
			t.Fatalf("Frozen() after Freeze = %v, %v", frozen, err)
		}
		before := read()
		time.Sleep(300 * time.Millisecond)
		if after := read(); after != before {
			t.Errorf("counter moved from %d to %d while frozen", before, after)
		}
		if err := g.Thaw(); err != nil {
			t.Fatal(err)
		}
		if frozen, err := g.Frozen(); err != nil || frozen {
			t.Fatalf("Frozen() after Thaw = %v, %v", frozen, err)
		}
		eventually(t, 10*time.Second, fmt.Sprintf("the counter moves past %d after Thaw", before), func() bool { return read() > before })

		// A frozen group can still be killed and deleted.
		if err := g.Freeze(); err != nil {
			t.Fatal(err)
		}
		if err := g.Delete(); err != nil {
			t.Fatal(err)
		}
		if st := p.wait(t, 10*time.Second); !killedBy(st, "killed") {
			t.Errorf("counter ended with %v, want SIGKILL", st)
		}
		assertGone(t, m, "p/a")
	})

	t.Run("DeleteKillsLeftovers", func(t *testing.T) {
		m := d.newManager(t, randomParent(t))
		g, err := m.Create("p/a", Limits{})
		if err != nil {
			t.Fatal(err)
		}
		p := startHelper(t, "sleep", "")
		if err := g.AddProc(p.pid()); err != nil {
			t.Fatal(err)
		}
		if err := g.Delete(); err != nil {
			t.Fatal(err)
		}
		if st := p.wait(t, 10*time.Second); !killedBy(st, "killed") {
			t.Errorf("helper ended with %v, want SIGKILL", st)
		}
		assertGone(t, m, "p/a")
		listIs(t, m)
	})

	t.Run("DeleteKillsPartialMember", func(t *testing.T) {
		// A process an interrupted AddProc left in the first hierarchy
		// only is still the group's, and Delete kills it.
		m := d.newManager(t, randomParent(t))
		g, err := m.Create("p/a", Limits{})
		if err != nil {
			t.Fatal(err)
		}
		p := startHelper(t, "sleep", "")
		procs := filepath.Join(groupDirs(t, m, "p/a")[0], "cgroup.procs")
		if err := os.WriteFile(procs, []byte(strconv.Itoa(p.pid())), 0); err != nil {
			t.Fatal(err)
		}
		if err := g.Delete(); err != nil {
			t.Fatal(err)
		}
		if st := p.wait(t, 10*time.Second); !killedBy(st, "killed") {
			t.Errorf("helper ended with %v, want SIGKILL", st)
		}
		assertGone(t, m, "p/a")
	})

	t.Run("SeparateParents", func(t *testing.T) {
		ma := d.newManager(t, randomParent(t))
		mb := d.newManager(t, randomParent(t))
		if _, err := ma.Create("p/x", Limits{}); err != nil {
			t.Fatal(err)
		}
		if _, err := mb.Create("p/x", Limits{}); err != nil {
			t.Errorf("same name under another parent: %v", err)
		}
		if _, err := mb.Create("p/y", Limits{}); err != nil {
			t.Fatal(err)
		}
		listIs(t, ma, "p/x")
		listIs(t, mb, "p/x", "p/y")
		if _, err := ma.Load("p/y"); !errdefs.IsNotFound(err) {
			t.Errorf("Load of the other parent's group = %v, want NotFound", err)
		}
		gb, _ := mb.Load("p/x")
		if err := gb.Delete(); err != nil {
			t.Fatal(err)
		}
		listIs(t, ma, "p/x")
	})

	t.Run("MemoryOOM", func(t *testing.T) {
		needLimits(t)
		m := d.newManager(t, randomParent(t))
		const limit = 64 << 20
		g, err := m.Create("p/a", Limits{Memory: limit})
		if err != nil {
			t.Fatal(err)
		}
		assertSwapOff(t, g, limit)
		if n, err := g.OOMKills(); err != nil || n != 0 {
			t.Fatalf("OOMKills of a fresh group = %d, %v", n, err)
		}
		p := startHelper(t, "alloc", strconv.Itoa(200<<20))
		if err := g.AddProc(p.pid()); err != nil {
			t.Fatal(err)
		}
		p.release(t)
		st := p.wait(t, 30*time.Second)
		if !killedBy(st, "killed") {
			t.Fatalf("helper touching 200Mi under a 64Mi ceiling ended with %v, want SIGKILL; output: %s", st, p.output())
		}
		n, err := g.OOMKills()
		if err != nil || n < 1 {
			t.Errorf("OOMKills after the kill = %d, %v; want >= 1", n, err)
		}
		s, err := g.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if s.OOMKills != n || s.MemoryMax != limit {
			t.Errorf("Stats = %+v; want OOMKills %d, MemoryMax %d", s, n, limit)
		}
		// The kernel may overshoot the ceiling by a few pages of charge batching.
		if s.MemoryPeak > limit+1<<20 || (s.MemoryPeak != 0 && s.MemoryPeak < limit/2) {
			t.Errorf("Stats.MemoryPeak = %d; want about %d", s.MemoryPeak, limit)
		}
		// What the supervisor reports after an OOM kill: the peak, and what
		// stays charged once the victim's anonymous memory is gone.
		ms, err := g.MemoryStat()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("memory.stat after the OOM kill: %+v", ms)
		if (ms.Peak != 0 && ms.Peak < limit/2) || ms.Anon > limit || ms.Shmem > ms.File {
			t.Errorf("MemoryStat after the kill = %+v (limit %d)", ms, limit)
		}
		if err := g.Delete(); err != nil {
			t.Fatal(err)
		}
		assertGone(t, m, "p/a")
	})

	// MemoryStat sees a live process's anonymous memory and a tmpfs-like
	// charge; on v1 the TCP buffer counter has the memory ceiling.
	t.Run("MemoryStat", func(t *testing.T) {
		needLimits(t)
		m := d.newManager(t, randomParent(t))
		const limit = 128 << 20
		g, err := m.Create("p/a", Limits{Memory: limit})
		if err != nil {
			t.Fatal(err)
		}
		if v1, ok := g.(*v1Group); ok {
			tcp := filepath.Join(v1.m.hiers[0].dir(v1.rel), "memory.kmem.tcp.limit_in_bytes")
			if _, err := os.Stat(tcp); err == nil {
				if got, err := readInt(tcp); err != nil || got != limit {
					t.Errorf("%s = %d, %v; want %d (TCP buffers under the same ceiling)", tcp, got, err, limit)
				}
			}
		}
		p := startHelper(t, "alloc-hold", strconv.Itoa(32<<20))
		if err := g.AddProc(p.pid()); err != nil {
			t.Fatal(err)
		}
		p.release(t)
		eventually(t, 10*time.Second, "32Mi of anonymous memory in memory.stat", func() bool {
			ms, err := g.MemoryStat()
			return err == nil && ms.Anon >= 30<<20 && ms.Usage >= ms.Anon && (ms.Peak == 0 || ms.Peak >= ms.Usage)
		})
		ms, _ := g.MemoryStat()
		t.Logf("memory.stat with 32Mi touched: %+v", ms)
	})

	t.Run("CPUQuota", func(t *testing.T) {
		needLimits(t)
		m := d.newManager(t, randomParent(t))
		g, err := m.Create("p/a", Limits{CPU: 0.2})
		if err != nil {
			t.Fatal(err)
		}
		assertCPUQuota(t, g, 20000)
		p := startHelper(t, "spin", "")
		if err := g.AddProc(p.pid()); err != nil {
			t.Fatal(err)
		}
		p.release(t)
		time.Sleep(200 * time.Millisecond) // past the first period's burst
		s0, err := g.Stats()
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		time.Sleep(time.Second)
		s1, err := g.Stats()
		if err != nil {
			t.Fatal(err)
		}
		wall := time.Since(t0)
		cores := float64(s1.CPUUsageNS-s0.CPUUsageNS) / float64(wall.Nanoseconds())
		t.Logf("spinning on every CPU under a 0.2-core quota used %.3f cores over %s", cores, wall)
		if cores > 0.3 {
			t.Errorf("used %.3f cores under a 0.2-core quota; want <= 0.3", cores)
		}
		if s1.CPUUsageNS <= s0.CPUUsageNS {
			t.Errorf("CPU usage did not grow (%d -> %d): is the spinner in the group?", s0.CPUUsageNS, s1.CPUUsageNS)
		}
	})

	t.Run("PidsCeiling", func(t *testing.T) {
		needLimits(t)
		m := d.newManager(t, randomParent(t))
		const max = 8
		g, err := m.Create("p/a", Limits{Pids: max})
		if err != nil {
			t.Fatal(err)
		}
		// Fork children that sleep until a fork fails; report how many
		// succeeded and the errno of the failure.
		script := `
import os, sys, time
sys.stdin.readline()
n = 0
while n < 64:
    try:
        pid = os.fork()
    except OSError as e:
        print(n, e.errno, flush=True)
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    n += 1
else:
    print(n, 0, flush=True)
sys.stdin.readline()
`
		p := startCmd(t, python(t), "-c", script)
		if err := g.AddProc(p.pid()); err != nil {
			t.Fatal(err)
		}
		p.release(t)
		var out string
		eventually(t, 20*time.Second, "the fork loop reports", func() bool {
			out = p.output()
			return strings.Contains(out, "\n")
		})
		var forks, errno int
		if _, err := fmt.Sscan(out, &forks, &errno); err != nil {
			t.Fatalf("fork loop printed %q: %v", out, err)
		}
		// pids.max counts the forking process itself: 1 + 7 children = 8,
		// so the 8th fork (which would make a 9th task) fails with EAGAIN.
		if forks != max-1 || errno != 11 {
			t.Errorf("forks = %d, errno = %d; want %d forks then EAGAIN (11)", forks, errno, max-1)
		}
		s, err := g.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if s.Pids != max {
			t.Errorf("Stats.Pids = %d, want %d", s.Pids, max)
		}
		if err := g.Delete(); err != nil {
			t.Fatal(err)
		}
		assertGone(t, m, "p/a")
	})

	t.Run("LimitsNeedControllers", func(t *testing.T) {
		if d.noLimits == "" {
			t.Skip("every controller is available here; nothing is refused")
		}
		m := d.newManager(t, randomParent(t))
		if _, err := m.Create("p/a", Limits{Memory: 64 << 20, CPU: 1, Pids: 10}); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("Create with limits the host cannot enforce = %v, want FailedPrecondition", err)
		}
		listIs(t, m)
	})
}

func listIs(t *testing.T, m Manager, want ...string) {
	t.Helper()
	got, err := m.List()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(unionSorted(want), got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
}

func assertGone(t *testing.T, m Manager, name string) {
	t.Helper()
	for _, dir := range groupDirs(t, m, name) {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s still there after Delete (%v)", dir, err)
		}
	}
	if _, err := m.Load(name); !errdefs.IsNotFound(err) {
		t.Errorf("Load(%s) after Delete = %v, want NotFound", name, err)
	}
}

// assertMember checks /proc/<pid>/cgroup places pid in the group in every
// hierarchy.
func assertMember(t *testing.T, m Manager, name string, pid int) {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	switch m := m.(type) {
	case *v1Manager:
		for _, h := range m.hiers {
			want := path.Join(h.root, groupRel(m.parent, name))
			if !inCgroup(string(data), h.name, want) {
				t.Errorf("pid %d not in %s:%s; /proc/%d/cgroup:\n%s", pid, h.name, want, pid, data)
			}
		}
	case *v2Manager:
		want := path.Join(m.root, groupRel(m.parent, name))
		if !inCgroup(string(data), "", want) {
			t.Errorf("pid %d not in 0::%s; /proc/%d/cgroup:\n%s", pid, want, pid, data)
		}
	}
}

func assertSwapOff(t *testing.T, g Group, limit int64) {
	t.Helper()
	dir := g.Path()
	if _, err := os.Stat(filepath.Join(dir, "memory.limit_in_bytes")); err == nil { // v1
		for _, f := range []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes"} {
			v, err := readInt(filepath.Join(dir, f))
			if os.IsNotExist(err) && f == "memory.memsw.limit_in_bytes" {
				sw, _ := readInt(filepath.Join(dir, "memory.swappiness"))
				if sw != 0 {
					t.Errorf("no memsw and memory.swappiness = %d, want 0", sw)
				}
				continue
			}
			if err != nil || v != limit {
				t.Errorf("%s = %d, %v; want %d (memory+swap capped at the RAM ceiling)", f, v, err, limit)
			}
		}
		return
	}
	if v, err := readInt(filepath.Join(dir, "memory.max")); err != nil || v != limit {
		t.Errorf("memory.max = %d, %v; want %d", v, err, limit)
	}
	if _, err := os.Stat(filepath.Join(dir, "memory.swap.max")); err == nil {
		if v, err := readInt(filepath.Join(dir, "memory.swap.max")); err != nil || v != 0 {
			t.Errorf("memory.swap.max = %d, %v; want 0", v, err)
		}
	}
}

func assertCPUQuota(t *testing.T, g Group, quota int64) {
	t.Helper()
	switch g := g.(type) {
	case *v1Group:
		h, _ := g.m.hierOf("cpu")
		dir := h.dir(g.rel)
		for f, want := range map[string]int64{"cpu.cfs_quota_us": quota, "cpu.cfs_period_us": cpuPeriodUS} {
			if v, err := readInt(filepath.Join(dir, f)); err != nil || v != want {
				t.Errorf("%s = %d, %v; want %d", f, v, err, want)
			}
		}
	case *v2Group:
		b, err := os.ReadFile(filepath.Join(g.Path(), "cpu.max"))
		if want := fmt.Sprintf("%d %d", quota, cpuPeriodUS); err != nil || strings.TrimSpace(string(b)) != want {
			t.Errorf("cpu.max = %q, %v; want %q", b, err, want)
		}
	}
}
