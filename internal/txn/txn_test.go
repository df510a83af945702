package txn

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/kerneltest"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "ops", "transactions"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

func write(t *testing.T, p, data string, m os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), m); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, m); err != nil {
		t.Fatal(err)
	}
}

// TestUndoRestoresExactly: every kind of change, applied in one
// transaction, is reverted by Undo to the exact prior state.
func TestUndoRestoresExactly(t *testing.T) {
	s := newStore(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	write(t, key, "secret", 0o644)
	conf := filepath.Join(dir, "config.yaml")
	write(t, conf, "version: \"1\"\n", 0o640)
	junk := filepath.Join(dir, "junk")
	write(t, junk, "old bytes", 0o600)
	orphan := filepath.Join(dir, "bundles", "abc")
	write(t, filepath.Join(orphan, "cortex.yaml"), "project: x\n", 0o644)
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o751); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(empty, 0o751); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	link := filepath.Join(dir, "link")
	if err := os.Symlink("key", link); err != nil {
		t.Fatal(err)
	}
	newDir := filepath.Join(dir, "new")
	sysdir := t.TempDir()
	s.sysctlDir = sysdir
	write(t, filepath.Join(sysdir, "kernel", "dmesg_restrict"), "0\n", 0o644)

	tx, err := s.Begin("repair", "test", "every kind")
	if err != nil {
		t.Fatal(err)
	}
	steps := []func() error{
		func() error { return tx.Chmod(key, 0o600) },
		func() error { return tx.WriteFile(conf, []byte("version: \"1\"\nops: {}\n"), 0o600) },
		func() error { return tx.Remove(junk) },
		func() error { return tx.MoveAside(orphan) },
		func() error { return tx.Remove(empty) },
		func() error { return tx.Remove(sock) },
		func() error { return tx.Remove(link) },
		func() error { return tx.Mkdir(newDir, 0o700) },
		func() error { return tx.Sysctl("kernel.dmesg_restrict", "1") },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// Applied.
	if m := mode(t, key).Perm(); m != 0o600 {
		t.Errorf("key mode %o", m)
	}
	for _, p := range []string{junk, orphan, empty, sock, link} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there: %v", p, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(sysdir, "kernel", "dmesg_restrict")); string(b) != "1\n" {
		t.Errorf("sysctl %q", b)
	}
	// The journal says what was done, and is root's only.
	got, err := s.Get(tx.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != StateCommitted || len(got.Changes) != len(steps) {
		t.Fatalf("journal %+v", got)
	}
	if m := mode(t, filepath.Join(s.Dir(), tx.ID+".json")).Perm(); m != 0o600 {
		t.Errorf("journal mode %o", m)
	}
	if !strings.Contains(got.Changes[0].String(), "chmod 0600") || !strings.Contains(got.Changes[0].String(), "was 0644") {
		t.Errorf("describe: %s", got.Changes[0])
	}

	if _, err := s.Undo(tx.ID, false); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, key).Perm(); m != 0o644 {
		t.Errorf("key mode after undo %o", m)
	}
	if b, _ := os.ReadFile(conf); string(b) != "version: \"1\"\n" || mode(t, conf).Perm() != 0o640 {
		t.Errorf("config after undo %q %o", b, mode(t, conf).Perm())
	}
	if b, _ := os.ReadFile(junk); string(b) != "old bytes" || mode(t, junk).Perm() != 0o600 {
		t.Errorf("junk after undo %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(orphan, "cortex.yaml")); string(b) != "project: x\n" {
		t.Errorf("moved dir after undo %q", b)
	}
	if m := mode(t, empty); !m.IsDir() || m.Perm() != 0o751 {
		t.Errorf("empty dir after undo %v", m)
	}
	if m := mode(t, sock); m&os.ModeSocket == 0 {
		t.Errorf("socket after undo %v", m)
	}
	if l, _ := os.Readlink(link); l != "key" {
		t.Errorf("link after undo %q", l)
	}
	if _, err := os.Stat(newDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mkdir not undone: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(sysdir, "kernel", "dmesg_restrict")); string(b) != "0\n" {
		t.Errorf("sysctl after undo %q", b)
	}
	got, _ = s.Get(tx.ID)
	if got.State != StateUndone || got.UndoneAt == nil {
		t.Errorf("state %s", got.State)
	}
	// A second undo is refused.
	if _, err := s.Undo(tx.ID, false); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("second undo: %v", err)
	}
}

// TestUndoConflict: a target changed after the repair is not reverted
// (nothing is), unless forced.
func TestUndoConflict(t *testing.T) {
	s := newStore(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	write(t, a, "a", 0o644)
	write(t, b, "b", 0o644)
	tx, _ := s.Begin("repair", "test", "two chmods")
	if err := tx.Chmod(a, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tx.Chmod(b, 0o600); err != nil {
		t.Fatal(err)
	}
	_ = tx.Commit()
	if err := os.Chmod(b, 0o640); err != nil { // someone else
		t.Fatal(err)
	}
	_, err := s.Undo(tx.ID, false)
	var ce *ConflictError
	if !errors.As(err, &ce) || !errdefs.IsFailedPrecondition(err) || len(ce.Conflicts) != 1 || !strings.Contains(ce.Conflicts[0], "mode now 0640") {
		t.Fatalf("undo after a change: %v", err)
	}
	if m := mode(t, a).Perm(); m != 0o600 {
		t.Errorf("a was reverted despite the conflict: %o", m)
	}
	if _, err := s.Undo(tx.ID, true); err != nil {
		t.Fatal(err)
	}
	if mode(t, a).Perm() != 0o644 || mode(t, b).Perm() != 0o644 {
		t.Errorf("forced undo: %o %o", mode(t, a).Perm(), mode(t, b).Perm())
	}
}

// TestAbortReverts: a failing step aborts the transaction and the applied
// steps are reverted.
func TestAbortReverts(t *testing.T) {
	s := newStore(t)
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	write(t, a, "a", 0o644)
	tx, _ := s.Begin("repair", "test", "fails halfway")
	if err := tx.Chmod(a, 0o600); err != nil {
		t.Fatal(err)
	}
	err := tx.Remove(filepath.Join(dir, "missing"))
	if !errdefs.IsNotFound(err) {
		t.Fatalf("remove missing: %v", err)
	}
	if err := tx.Abort(err); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, a).Perm(); m != 0o644 {
		t.Errorf("not reverted: %o", m)
	}
	got, _ := s.Get(tx.ID)
	if got.State != StateAborted || !strings.Contains(got.Error, "does not exist") || len(got.Changes) != 1 || !got.Changes[0].Undone {
		t.Errorf("journal %+v", got)
	}
}

// TestDryRunChangesNothing: Plan records the same changes and touches
// nothing, and saves nothing.
func TestDryRunChangesNothing(t *testing.T) {
	s := newStore(t)
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	write(t, a, "a", 0o644)
	tx := s.Plan("repair", "test", "plan")
	if err := tx.Chmod(a, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tx.MoveAside(a); err != nil {
		t.Fatal(err)
	}
	_ = tx.Commit()
	if m := mode(t, a).Perm(); m != 0o644 {
		t.Errorf("dry run changed the mode: %o", m)
	}
	if len(tx.Changes) != 2 || tx.Changes[0].Applied {
		t.Errorf("plan %+v", tx.Changes)
	}
	if all, _ := s.List(); len(all) != 0 {
		t.Errorf("dry run saved %d transactions", len(all))
	}
}

func TestRefusals(t *testing.T) {
	s := newStore(t)
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	write(t, target, "x", 0o644)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	tx, _ := s.Begin("repair", "test", "refusals")
	if err := tx.Chmod(link, 0o600); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("chmod through a symlink: %v", err)
	}
	if m := mode(t, target).Perm(); m != 0o644 {
		t.Errorf("the link's target changed: %o", m)
	}
	if err := tx.Mkdir(dir, 0o700); !errdefs.IsAlreadyExists(err) {
		t.Errorf("mkdir existing: %v", err)
	}
	if _, err := s.Get("../../etc/passwd"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad id: %v", err)
	}
	if _, err := s.Get("tx-20990101-000000-abcdef"); !errdefs.IsNotFound(err) {
		t.Errorf("unknown id: %v", err)
	}
}

func TestPendingAndAnnounced(t *testing.T) {
	s := newStore(t)
	tx, _ := s.Begin("repair", "x", "nothing")
	_ = tx.Commit()
	p, err := s.Pending()
	if err != nil || len(p) != 1 {
		t.Fatalf("pending %v %v", p, err)
	}
	if err := s.MarkAnnounced(p[0]); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Pending(); len(p) != 0 {
		t.Fatalf("still pending: %v", p)
	}
	if _, err := s.Undo(tx.ID, false); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Pending(); len(p) != 1 || p[0].State != StateUndone {
		t.Fatalf("undo not pending: %v", p)
	}
}

// TestChownUndo needs root to give a file away.
func TestChownUndo(t *testing.T) {
	kerneltest.RequireRoot(t)
	s := newStore(t)
	f := filepath.Join(t.TempDir(), "f")
	write(t, f, "x", 0o600)
	if err := os.Chown(f, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	tx, _ := s.Begin("repair", "x", "chown")
	if err := tx.Chown(f, 0, 0); err != nil {
		t.Fatal(err)
	}
	_ = tx.Commit()
	if _, err := s.Undo(tx.ID, false); err != nil {
		t.Fatal(err)
	}
	b, _ := stat(f, false)
	if *b.UID != 65534 || *b.GID != 65534 {
		t.Errorf("owner after undo %d:%d", *b.UID, *b.GID)
	}
}
