package daemon

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/kerneltest"
	"golang.org/x/sys/unix"
)

// TestCheckTrustedPath: a root under a directory another user could
// change is refused, through symlinks too; sticky directories (/tmp) and
// directories that do not exist yet are fine.
func TestPrepareStateUntrustedRoot(t *testing.T) {
	kerneltest.RequireRoot(t)
	base := t.TempDir()
	dir := filepath.Join(base, "userowned", "root")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(base, "userowned"), 65534, 0); err != nil {
		t.Fatal(err)
	}
	// prepareState refuses such a root with a hint.
	err := prepareState(config.NewPaths(dir), slog.New(slog.DiscardHandler))
	if !errdefs.IsFailedPrecondition(err) || errdefs.HintOf(err) == "" {
		t.Errorf("prepareState under a user's directory: %v (hint %q)", err, errdefs.HintOf(err))
	}
}

// TestPrepareStateModes: a fresh root gets the modes of stateDirs under
// the daemon's umask; a loosened one is put right, each change logged;
// write grants of bundle-file projects are closed to all but their owner.
func TestPrepareStateModes(t *testing.T) {
	kerneltest.RequireRoot(t)
	old := syscallUmask(Umask)
	defer syscallUmask(old)
	p := config.NewPaths(t.TempDir())
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	if err := prepareState(p, log); err != nil {
		t.Fatal(err)
	}
	modes := func() map[string]os.FileMode {
		out := map[string]os.FileMode{}
		for _, d := range stateDirs(p) {
			fi, err := os.Stat(d.path)
			if err != nil {
				t.Fatal(err)
			}
			out[d.path] = fi.Mode().Perm()
		}
		return out
	}
	for _, d := range stateDirs(p) {
		if got := modes()[d.path]; got != d.mode {
			t.Errorf("fresh %s: %v, want %v", d.path, got, d.mode)
		}
	}
	for _, d := range []string{p.Root + "/var", p.Root + "/run", filepath.Dir(p.ConfigFile)} {
		if fi, _ := os.Stat(d); fi == nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v, want 0755 (made under umask %o)", d, fi, Umask)
		}
	}
	if logBuf.Len() != 0 {
		t.Errorf("a fresh root logged repairs:\n%s", logBuf.String())
	}

	// As an older cortexd left it.
	lib := p.LibDir
	grant := filepath.Join(lib, "projects", "swarm", "data", "out")
	mid := filepath.Join(lib, "projects", "swarm", "data", "nested")
	nestedGrant := filepath.Join(mid, "g")
	rootGrant := filepath.Join(lib, "projects", "rootswarm", "data", "out")
	for _, d := range []string{grant, nestedGrant, rootGrant, filepath.Join(p.LogDir, "swarm", "w")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{grant, nestedGrant} {
		if err := os.Chown(d, 1234, 1234); err != nil {
			t.Fatal(err)
		}
	}
	for path, mode := range map[string]os.FileMode{
		lib: 0o755, filepath.Join(lib, "bundles"): 0o755, p.CacheDir: 0o755, filepath.Join(p.RunDir, "agents"): 0o755,
		grant: 0o755, mid: 0o755, nestedGrant: 0o775, rootGrant: 0o755,
		filepath.Join(lib, "projects", "swarm"): 0o755, filepath.Join(lib, "projects", "swarm", "data"): 0o755,
		filepath.Join(p.LogDir, "swarm"): 0o755, filepath.Join(p.LogDir, "swarm", "w"): 0o755,
	} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(lib, "state.db"), filepath.Join(p.LogDir, "cortexd.log"), filepath.Join(p.LogDir, "swarm", "w", "0001.seg")} {
		if err := os.WriteFile(f, []byte("data"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	logBuf.Reset()
	if err := prepareState(p, log); err != nil {
		t.Fatal(err)
	}
	repairProjects(filepath.Join(lib, "projects"), map[string]int{"swarm": 1234, "rootswarm": 0}, log)
	for _, d := range stateDirs(p) {
		if got := modes()[d.path]; got != d.mode {
			t.Errorf("repaired %s: %v, want %v", d.path, got, d.mode)
		}
	}
	for path, want := range map[string]os.FileMode{
		filepath.Join(lib, "state.db"):                    0o600,
		filepath.Join(p.LogDir, "cortexd.log"):            0o600,
		filepath.Join(p.LogDir, "swarm"):                  0o750,
		filepath.Join(p.LogDir, "swarm", "w", "0001.seg"): 0o640,
		filepath.Join(lib, "projects", "swarm"):           0o711,
		filepath.Join(lib, "projects", "swarm", "data"):   0o711,
		grant:       0o700, // the owner's: closed to others
		mid:         0o711, // root's, on the way to a nested grant: traversable
		nestedGrant: 0o700,
		rootGrant:   0o700, // root's project: its grant is root's
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("repaired %s: %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
	for _, path := range []string{lib, filepath.Join(lib, "state.db"), grant, filepath.Join(p.LogDir, "cortexd.log")} {
		if !strings.Contains(logBuf.String(), `msg="repaired mode" path=`+path+" ") {
			t.Errorf("no log line for the repair of %s:\n%s", path, logBuf.String())
		}
	}
}

func syscallUmask(m int) int { return unix.Umask(m) }
