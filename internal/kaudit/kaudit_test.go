//go:build linux && (amd64 || arm64)

package kaudit

import (
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/kerneltest"
	"golang.org/x/sys/unix"
)

// TestParseRecord: fields quoted, plain and in hex, and the serial.
func TestParseRecord(t *testing.T) {
	r, ok := parseRecord(auditPath, `audit(1796407368.520:260): item=0 name=2F6170702F612062 nametype=UNKNOWN cwd="/app" comm="python3.11"`)
	if !ok || r.serial != 260 || r.fields["name"] != "/app/a b" || r.fields["nametype"] != "UNKNOWN" || r.fields["cwd"] != "/app" || r.fields["comm"] != "python3.11" {
		t.Fatalf("parseRecord = %+v %v", r, ok)
	}
	if _, ok := parseRecord(auditPath, "not a record"); ok {
		t.Error("garbage parsed")
	}
}

// TestDenial: an event's records make a Denial with the path made
// absolute and the access read from the open flags.
func TestDenial(t *testing.T) {
	var openat, creat int
	for nr, info := range syscalls {
		switch info.name {
		case "openat":
			openat = nr
		case "mkdirat":
			creat = nr
		}
	}
	mk := func(nr int, exit, a0, a2, name, nametype, cwd string) *event {
		sc, _ := parseRecord(auditSyscall, "audit(1.0:7): arch=c000003e syscall="+itoa(nr)+" success=no exit="+exit+" a0="+a0+" a1=0 a2="+a2+" a3=0 pid=42 uid=1600000 comm=\"python3\"")
		p, _ := parseRecord(auditPath, "audit(1.0:7): item=0 name=\""+name+"\" nametype="+nametype)
		return &event{syscall: &sc, cwd: cwd, paths: []record{p}}
	}
	for _, tc := range []struct {
		name string
		e    *event
		want Denial
		ok   bool
	}{
		{"relative-read", mk(openat, "-2", "ffffff9c", "80000", "data/topics.txt", "UNKNOWN", "/app"),
			Denial{PID: 42, UID: 1600000, Comm: "python3", Syscall: "openat", Errno: "ENOENT", Path: "/app/data/topics.txt", Access: AccessRead}, true},
		{"write-flags", mk(openat, "-30", "ffffff9c", "241", "/app/data/out.txt", "UNKNOWN", ""),
			Denial{PID: 42, UID: 1600000, Comm: "python3", Syscall: "openat", Errno: "EROFS", Path: "/app/data/out.txt", Access: AccessWrite}, true},
		{"mkdir", mk(creat, "-2", "ffffff9c", "1ff", "output/", "UNKNOWN", "/app"),
			Denial{PID: 42, UID: 1600000, Comm: "python3", Syscall: "mkdirat", Errno: "ENOENT", Path: "/app/output", Access: AccessWrite}, true},
		{"other-dirfd", mk(openat, "-2", "3", "0", "x.txt", "UNKNOWN", "/app"), Denial{}, false},
		{"eexist", mk(openat, "-17", "ffffff9c", "0", "/app/x", "UNKNOWN", ""), Denial{}, false},
		{"success", mk(openat, "3", "ffffff9c", "0", "/app/x", "NORMAL", ""), Denial{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.e.denial(syscalls)
			if ok != tc.ok || got != tc.want {
				t.Errorf("denial = %+v %v, want %+v %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func itoa(n int) string {
	return string([]byte(func() []byte {
		if n == 0 {
			return []byte("0")
		}
		var b []byte
		for ; n > 0; n /= 10 {
			b = append([]byte{byte('0' + n%10)}, b...)
		}
		return b
	}()))
}

// TestWatch runs a shell as an unprivileged uid in a new pid namespace
// and checks the kernel's refusals of its calls are reported, and that
// the same uid's refusals outside that namespace are not.
func TestWatch(t *testing.T) {
	kerneltest.RequireRoot(t)
	kerneltest.Require(t, "kernel audit records (NETLINK_AUDIT, CAP_AUDIT_READ)", Probe)
	const uid = 1654333
	a := New("cortex-kaudit-test", nil)
	defer a.Close()
	var mu sync.Mutex
	var got []Denial
	// The shell was started before the watch, so the kernel audits its
	// children only (as the daemon watches before the agent starts): it
	// waits for its stdin, then every call runs in a child.
	script := `read go; cat /nonexistent-cortex/x 2>/dev/null; sh -c ': > /etc/cortex-kaudit-test' 2>/dev/null; cd /tmp && cat rel-cortex/missing 2>/dev/null; sleep 0.2`
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ns, err := PidNS(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	w, err := a.Watch(uid, ns, func(d Denial) { mu.Lock(); got = append(got, d); mu.Unlock() })
	if err != nil {
		kerneltest.Missing(t, "kernel audit: "+err.Error())
	}
	// The same uid outside the namespace: not reported.
	outside := exec.Command("/bin/sh", "-c", "cat /nonexistent-outside/y 2>/dev/null; sleep 0.2")
	outside.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	_ = outside.Run()
	stdin.Write([]byte("go\n"))
	stdin.Close()
	_ = cmd.Wait()
	// Creating a file in /etc is refused at its directory: the kernel
	// names the directory only.
	want := map[string]string{"/nonexistent-cortex/x": "read ENOENT", "/etc": "write EACCES parent", "/tmp/rel-cortex/missing": "read ENOENT"}
	deadline := time.Now().Add(3 * time.Second)
	for {
		mu.Lock()
		seen := map[string]string{}
		for _, d := range got {
			seen[d.Path] = d.Access + " " + d.Errno
			if d.Parent {
				seen[d.Path] += " parent"
			}
			if d.Path == "/nonexistent-outside/y" {
				t.Errorf("reported a process outside the watched namespace: %+v", d)
			}
		}
		mu.Unlock()
		missing := 0
		for p, w := range want {
			if seen[p] != w {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reported %v, want %v", seen, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.Close()
	// The last watch gone: the rule is removed and auditing restored.
	if a.ctl != -1 {
		t.Error("the auditor still holds its sockets")
	}
}

// TestCleanup: a rule left by a daemon killed while watching is removed
// by the next one's Cleanup, and only its own.
func TestCleanup(t *testing.T) {
	kerneltest.RequireRoot(t)
	kerneltest.Require(t, "kernel audit records (NETLINK_AUDIT, CAP_AUDIT_READ)", Probe)
	// The simulated crash leaves auditing as it found it afterwards.
	orig := auditState(t, nil)
	defer auditState(t, &orig)
	dead := New("cortex-kaudit-cleanup", nil)
	other := New("cortex-kaudit-other", nil)
	if _, err := dead.Watch(1654334, 1, func(Denial) {}); err != nil {
		kerneltest.Missing(t, "kernel audit: "+err.Error())
	}
	ow, err := other.Watch(1654335, 1, func(Denial) {})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	// The first daemon dies without removing its rule: stop its reader
	// and forget its watches, as a killed process would.
	dead.mu.Lock()
	dead.wmu.Lock()
	dead.watches = map[int]*watch{}
	dead.wmu.Unlock()
	dead.shutdown()
	dead.mu.Unlock()
	next := New("cortex-kaudit-cleanup", nil)
	if err := next.Cleanup(); err != nil {
		t.Fatal(err)
	}
	// Its rule is gone: adding it again succeeds (no EEXIST), and the
	// other daemon's rule is still there (adding it again is EEXIST).
	next.mu.Lock()
	defer next.mu.Unlock()
	if err := next.start(); err != nil {
		t.Fatal(err)
	}
	defer next.shutdown()
	if err := next.request(auditAddRule, next.rule(1654334)); err != nil {
		t.Errorf("the leftover rule was not removed: adding it again: %v", err)
	}
	_ = next.request(auditDelRule, next.rule(1654334))
	if err := next.request(auditAddRule, other.rule(1654335)); err == nil {
		t.Error("the other daemon's rule was removed")
		_ = next.request(auditDelRule, other.rule(1654335))
	}
	ow.Close()
}

// FuzzParseRecord: no record text makes parseRecord or the event it
// builds panic.
func FuzzParseRecord(f *testing.F) {
	f.Add(uint16(auditSyscall), `audit(1796407368.520:260): arch=c000003e syscall=257 success=no exit=-2 a0=ffffff9c a1=1 a2=241 a3=0 items=1 ppid=5 pid=6 uid=1600000 comm="python3"`)
	f.Add(uint16(auditPath), `audit(1.0:7): item=0 name=2F6170702F612062 nametype=PARENT`)
	f.Add(uint16(auditCwd), `audit(1.0:7): cwd="/app"`)
	f.Fuzz(func(t *testing.T, typ uint16, text string) {
		r, ok := parseRecord(typ, text)
		if !ok {
			return
		}
		e := &event{syscall: &r, cwd: r.fields["cwd"], paths: []record{r}}
		e.denial(syscalls)
	})
}

// auditState reads the kernel's audit enabled flag, or sets it to *set.
func auditState(t *testing.T, set *uint32) uint32 {
	t.Helper()
	a := New("cortex-kaudit-state", nil)
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_AUDIT)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		t.Fatal(err)
	}
	a.ctl = fd
	if set != nil {
		if err := a.setEnabled(*set); err != nil {
			t.Errorf("restore the audit state: %v", err)
		}
		return *set
	}
	v, err := a.enabled()
	if err != nil {
		t.Fatal(err)
	}
	return v
}
