package update

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/errdefs"
)

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func release(t *testing.T, cli, daemon string, sums string) string {
	t.Helper()
	dir := t.TempDir()
	for n, c := range map[string]string{CLIName: cli, DaemonName: daemon, SumsName: sums} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func goodSums(cli, daemon string) string {
	return fmt.Sprintf("%s  cortex\n%s *cortexd\n", sum([]byte(cli)), sum([]byte(daemon)))
}

func TestVerify(t *testing.T) {
	if _, err := Verify(release(t, "cli", "daemon", goodSums("cli", "daemon"))); err != nil {
		t.Fatalf("good release: %v", err)
	}
	for _, tc := range []struct{ name, sums, err string }{
		{"tampered", goodSums("cli", "other"), "cortexd has SHA-256"},
		{"missing entry", sum([]byte("cli")) + "  cortex\n", "no sum for cortexd"},
		{"bad line", "hello world\n", "SHA256SUMS:1: not a sha256sum line"},
		{"twice", goodSums("cli", "daemon") + sum([]byte("cli")) + "  cortex\n", "SHA256SUMS:3: cortex is listed twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(release(t, "cli", "daemon", tc.sums))
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v, want %q", err, tc.err)
			}
		})
	}
	if _, err := Verify(t.TempDir()); !errdefs.IsInvalidArgument(err) || errdefs.HintOf(err) == "" {
		t.Errorf("empty dir: %v", err)
	}
}

func TestInstallCurrentHistory(t *testing.T) {
	l := Layout{ShareDir: t.TempDir()}
	dir := release(t, "cli-1", "daemon-1", goodSums("cli-1", "daemon-1"))
	sums, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := l.Install(dir, sums, "0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(l.Binary(v1.ID, DaemonName)); string(got) != "daemon-1" {
		t.Fatalf("installed daemon %q", got)
	}
	if fi, _ := os.Stat(l.Binary(v1.ID, CLIName)); fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v", fi.Mode())
	}
	again, err := l.Install(dir, sums, "0.1.0")
	if err != nil || again.ID != v1.ID {
		t.Fatalf("reinstall: %v %v", again, err)
	}
	// A damaged installed copy is refused, not silently reused.
	if err := os.WriteFile(l.Binary(v1.ID, DaemonName), []byte("evil"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Install(dir, sums, "0.1.0"); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("damaged install reused: %v", err)
	}
	if err := os.WriteFile(l.Binary(v1.ID, DaemonName), []byte("daemon-1"), 0o755); err != nil {
		t.Fatal(err)
	}
	v2, err := l.Snapshot(filepath.Join(dir, CLIName), filepath.Join(dir, DaemonName), "0.1.0")
	if err != nil || v2.ID != v1.ID {
		t.Fatalf("snapshot of the same binaries: %v %v", v2, err)
	}
	if cur, _ := l.Current(); cur != "" {
		t.Errorf("current before any set: %q", cur)
	}
	if err := l.SetCurrent(v1.ID); err != nil {
		t.Fatal(err)
	}
	if cur, _ := l.Current(); cur != v1.ID {
		t.Errorf("current %q", cur)
	}
	if b, err := os.ReadFile(filepath.Join(l.CurrentLink(), DaemonName)); err != nil || string(b) != "daemon-1" {
		t.Errorf("through current: %q %v", b, err)
	}
	if l.Owning(l.Binary(v1.ID, DaemonName)) != v1.ID || l.Owning("/usr/bin/cortexd") != "" {
		t.Error("Owning")
	}
	if err := l.SetCurrent("nope"); !errdefs.IsNotFound(err) {
		t.Errorf("set current to a missing version: %v", err)
	}

	h := History{Path: filepath.Join(t.TempDir(), "ops", "updates.json")}
	for _, e := range []Entry{
		{ID: "u1", Action: "update", From: Ref{ID: "a"}, To: Ref{ID: "b"}, Outcome: OutcomeOK},
		{ID: "u2", Action: "update", From: Ref{ID: "b"}, To: Ref{ID: "c"}, Outcome: OutcomeRolledBack},
	} {
		if err := h.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	all, err := h.Load()
	if err != nil || len(all) != 2 {
		t.Fatalf("history %v %v", all, err)
	}
	if fi, _ := os.Stat(h.Path); fi.Mode().Perm() != 0o600 {
		t.Errorf("history mode %v", fi.Mode())
	}
	if p, ok := Previous(all, "b"); !ok || p.ID != "a" {
		t.Errorf("previous of b: %v %v", p, ok)
	}
	if _, ok := Previous(all, "c"); ok {
		t.Error("a rolled-back update has no previous")
	}
}

func TestUnpack(t *testing.T) {
	dir := t.TempDir()
	tgz := filepath.Join(dir, "cortex.tar.gz")
	f, err := os.Create(tgz)
	if err != nil {
		t.Fatal(err)
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	add := func(name string, typ byte, body string) {
		_ = tw.WriteHeader(&tar.Header{Name: name, Typeflag: typ, Mode: 0o755, Size: int64(len(body)), Linkname: "/etc/passwd"})
		_, _ = tw.Write([]byte(body))
	}
	add("cortex-0.2.0/cortex", tar.TypeReg, "cli")
	add("cortex-0.2.0/cortexd", tar.TypeReg, "daemon")
	add("cortex-0.2.0/SHA256SUMS", tar.TypeReg, goodSums("cli", "daemon"))
	add("cortex-0.2.0/README", tar.TypeReg, "ignored")
	add("evil", tar.TypeSymlink, "")
	tw.Close()
	gz.Close()
	f.Close()
	out := t.TempDir()
	if err := Unpack(tgz, out); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(out); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "README")); err == nil {
		t.Error("README unpacked")
	}
	if err := Unpack(filepath.Join(out, CLIName), t.TempDir()); !errdefs.IsInvalidArgument(err) {
		t.Errorf("not a tarball: %v", err)
	}
}

func FuzzParseSums(f *testing.F) {
	f.Add(goodSums("a", "b"))
	f.Add("# comment\n\n" + strings.Repeat("0", 64) + " *./cortex\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		sums, err := ParseSums(strings.NewReader(s), "SHA256SUMS")
		if err != nil {
			return
		}
		for n, h := range sums {
			if len(h) != 64 || n == "" || strings.HasPrefix(n, "./") {
				t.Fatalf("accepted %q -> %q", n, h)
			}
		}
	})
}
