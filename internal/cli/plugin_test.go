package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/errdefs"
)

func TestPluginCandidate(t *testing.T) {
	e := &env{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	root := cortexRoot(e)
	for args, want := range map[string]bool{
		"run .":      false,
		"ls":         false, // an alias
		"help":       false,
		"completion": false,
		"--help":     false,
		"hello a b":  true,
		"":           false,
	} {
		_, got := pluginCandidate(root, strings.Fields(args))
		if got != want {
			t.Errorf("%q: candidate %v, want %v", args, got, want)
		}
	}
}

// TestFindPlugin: the root's plugins come before $PATH, and one others
// may write is refused rather than passed over.
func TestFindPlugin(t *testing.T) {
	root := t.TempDir()
	cenv := config.Env{Root: root}
	dir := rootPluginDir(cenv)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	t.Setenv("PATH", bin)
	write := func(p string, mode os.FileMode) {
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(bin, "cortex-both"), 0o755)
	write(filepath.Join(bin, "cortex-pathonly"), 0o755)
	write(filepath.Join(dir, "cortex-both"), 0o755)
	write(filepath.Join(dir, "cortex-open"), 0o757)
	if p, err := findPlugin(cenv, "both"); err != nil || p != filepath.Join(dir, "cortex-both") {
		t.Errorf("both: %q %v", p, err)
	}
	if p, err := findPlugin(cenv, "pathonly"); err != nil || p != filepath.Join(bin, "cortex-pathonly") {
		t.Errorf("pathonly: %q %v", p, err)
	}
	if _, err := findPlugin(cenv, "open"); !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "writable by every user") {
		t.Errorf("open: %v", err)
	}
	if p, err := findPlugin(cenv, "none"); err != nil || p != "" {
		t.Errorf("none: %q %v", p, err)
	}
	if p, _ := findPlugin(cenv, "../etc/passwd"); p != "" {
		t.Errorf("a path as a name: %q", p)
	}
	var out, errb bytes.Buffer
	code := run(&env{stdout: &out, stderr: &errb, cfg: cenv}, []string{"cortex", "nosuch"})
	if code != 2 || !strings.Contains(errb.String(), `unknown command "nosuch"`) {
		t.Errorf("unknown command: %d %s", code, errb.String())
	}
}

// TestDaemonBinaryPrefersCurrent: after an update, the autostart runs the
// installed version, not CORTEX_DAEMON.
func TestDaemonBinaryPrefersCurrent(t *testing.T) {
	root := t.TempDir()
	env := config.Env{Root: root, Daemon: "/somewhere/cortexd"}
	if got, _ := daemonBinary(env); got != "/somewhere/cortexd" {
		t.Errorf("before an update: %q", got)
	}
	share := config.NewPaths(root).ShareDir
	v := filepath.Join(share, "versions", "abc")
	if err := os.MkdirAll(v, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v, "cortexd"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("versions/abc", filepath.Join(share, "current")); err != nil {
		t.Fatal(err)
	}
	if got, _ := daemonBinary(env); got != filepath.Join(v, "cortexd") {
		t.Errorf("after an update: %q", got)
	}
}
