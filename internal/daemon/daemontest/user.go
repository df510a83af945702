package daemontest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cortexrt/cortex/internal/kerneltest"
)

// SocketGroup is the group cortexd gives its API socket when it exists
// (internal/daemon listenUnix): its members are the daemon's API users.
const SocketGroup = "cortex"

// User is a real local user made for one test (useradd), a member of
// SocketGroup, with a home directory of its own; it is deleted (and
// SocketGroup too, when the test made it) when the test ends. Make it
// before Start: the daemon looks SocketGroup up when it binds its socket.
type User struct {
	Name     string
	UID, GID int
	// GroupID is SocketGroup's gid.
	GroupID int
	// Home is a directory the user owns (0755) under a root-owned
	// temporary directory, Base.
	Home, Base string
}

// NewUser makes a User.
func NewUser(t testing.TB) User {
	t.Helper()
	kerneltest.RequireRoot(t)
	for _, tool := range []string{"useradd", "userdel", "groupadd", "groupdel"} {
		if _, err := exec.LookPath(tool); err != nil {
			kerneltest.Missing(t, "needs "+tool+" (Debian package passwd) to make a test user")
		}
	}
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	g, err := user.LookupGroup(SocketGroup)
	if err != nil {
		run("groupadd", "--system", SocketGroup)
		t.Cleanup(func() { _ = exec.Command("groupdel", SocketGroup).Run() })
		if g, err = user.LookupGroup(SocketGroup); err != nil {
			t.Fatal(err)
		}
	}
	gid, _ := strconv.Atoi(g.Gid)
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := "cxt" + hex.EncodeToString(rnd[:])
	base, err := os.MkdirTemp("", "cortex-e2e-user-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(base, name)
	run("useradd", "--system", "--user-group", "--no-create-home", "--home-dir", home, "--shell", "/bin/sh", "--groups", SocketGroup, name)
	t.Cleanup(func() {
		_ = exec.Command("userdel", name).Run()
		_ = os.RemoveAll(base)
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	ugid, _ := strconv.Atoi(u.Gid)
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, uid, ugid); err != nil {
		t.Fatal(err)
	}
	return User{Name: name, UID: uid, GID: ugid, GroupID: gid, Home: home, Base: base}
}

// Cred is the user's credentials for exec (SocketGroup as its
// supplementary group).
func (u User) Cred() *syscall.Credential {
	return &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: []uint32{uint32(u.GroupID)}}
}

// Sh runs a shell command as the user in dir and fails the test if it
// fails.
func (u User) Sh(t testing.TB, dir, script string) string {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-ec", script)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + u.Home, "USER=" + u.Name}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.Cred()}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as %s: sh -c %q: %v\n%s", u.Name, script, err, out)
	}
	return string(out)
}

// OpenToUsers makes the daemon's root and the binaries reachable by
// other users, as on a host where the root is "/" and the binaries are
// in /usr/bin: the CLI must reach the socket (run/cortex/cortexd.sock,
// mode 0660, group cortex) and be executable.
func (d *Daemon) OpenToUsers() {
	d.t.Helper()
	for _, dir := range []string{d.Root, d.Bin} {
		if err := os.Chmod(dir, 0o755); err != nil {
			d.t.Fatal(err)
		}
	}
}

// CLIAs runs cortex as u in dir and waits.
func (d *Daemon) CLIAs(u User, dir string, args ...string) Result {
	d.t.Helper()
	d.OpenToUsers()
	cmd := exec.CommandContext(context.Background(), filepath.Join(d.Bin, "cortex"), args...)
	cmd.Env = append(d.Env(), "HOME="+u.Home, "USER="+u.Name, "TMPDIR=/tmp")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.Cred()}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			d.t.Fatalf("cortex %v as %s: %v", args, u.Name, err)
		}
		code = ee.ExitCode()
	}
	return Result{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

// MustCLIAs is CLIAs that fails the test on a non-zero exit.
func (d *Daemon) MustCLIAs(u User, dir string, args ...string) string {
	d.t.Helper()
	r := d.CLIAs(u, dir, args...)
	if r.Code != 0 {
		d.t.Fatalf("cortex %s as %s: exit %d\nstdout:\n%s\nstderr:\n%s\ndaemon log:\n%s", strings.Join(args, " "), u.Name, r.Code, r.Stdout, r.Stderr, tail(d.LogText(), 40))
	}
	return r.Stdout
}
