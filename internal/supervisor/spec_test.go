package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/cortexrt/cortex/internal/config"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/kerneltest"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/runtimes"
	"github.com/cortexrt/cortex/internal/sandbox"
	"github.com/cortexrt/cortex/internal/store"
)

// specFixture is a project run from a directory, its store and the
// options BuildSpec needs.
type specFixture struct {
	opts Options
	in   SpecInput
	dir  string // the project's source directory
	st   *store.Store
}

func newSpecFixture(t *testing.T, confine bool, read, write []string) *specFixture {
	t.Helper()
	kerneltest.RequireRoot(t)
	reg := runtimes.NewRegistry(nil, config.FromEnv().PyenvRoot)
	rt := ""
	for _, r := range []string{"python3.11", "python3.12", "python3.10", "nodejs20", "nodejs18"} {
		if reg.Available(r) == nil {
			rt = r
			break
		}
	}
	if rt == "" {
		kerneltest.Missing(t, "no Python or Node runtime on this host")
	}
	base := t.TempDir()
	dir := filepath.Join(base, "proj")
	bundle := filepath.Join(base, "bundle")
	for _, d := range []string{dir, bundle, filepath.Join(dir, "pub"), filepath.Join(base, "data")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	st, err := store.Open(filepath.Join(base, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	src, err := sandbox.OpenDirCanonical(dir)
	if err != nil {
		t.Fatal(err)
	}
	src.Close()
	p := store.Project{Name: "p", Digest: "sha256:00", BundleDir: bundle, SourceDir: src.Path, SourceID: store.DirIdentity(src.ID),
		Manifest: json.RawMessage(`{}`), OwnerUID: 65534, OwnerGID: 65534}
	if err := st.PutProject(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	entry := "m:main"
	if strings.HasPrefix(rt, "nodejs") {
		entry = "m.js:main"
	}
	ra := manifest.ResolvedAgent{Project: "p", Name: "a", Runtime: rt, Entrypoint: entry,
		Capabilities: manifest.Capabilities{FilesystemRead: read, FilesystemWrite: write}}
	return &specFixture{
		opts: Options{Store: st, Runtimes: reg, ShareDir: filepath.Join(base, "share"), DataDir: filepath.Join(base, "data"),
			Sandbox: SandboxOptions{Confine: confine}},
		in:  SpecInput{Project: p, Agent: ra, UID: 1600000, RunDir: filepath.Join(base, "run")},
		dir: src.Path,
		st:  st,
	}
}

func refusedAt(t *testing.T, err error, step, want string) {
	t.Helper()
	var se *sandbox.StartError
	if !errors.As(err, &se) || se.Step != step || !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), want) {
		t.Errorf("BuildSpec: %v, want a permission-denied StartError at step %s saying %q", err, step, want)
	}
}

// TestBuildSpecGrantsFromTrees: grants are bound from detached mounts
// of the directories opened beneath the verified project directory; a
// missing write grant is made there, the owner's.
func TestBuildSpecGrantsFromTrees(t *testing.T) {
	f := newSpecFixture(t, true, []string{"pub"}, []string{"out/sub"})
	spec, err := BuildSpec(f.opts, f.in)
	if err != nil {
		t.Fatal(err)
	}
	defer spec.CloseFiles()
	trees := map[string]sandbox.Bind{}
	for _, b := range spec.Rootfs.Binds {
		if b.Tree != nil {
			trees[b.Target] = b
		}
	}
	if r, w := trees["/app/pub"], trees["/app/out/sub"]; len(trees) != 2 || r.Writable || !w.Writable || w.IDMap == nil || w.IDMap.HostUID != 65534 {
		t.Errorf("grant binds: %+v", trees)
	}
	fi, err := os.Stat(filepath.Join(f.dir, "out", "sub"))
	if err != nil || fi.Sys().(*syscall.Stat_t).Uid != 65534 || fi.Mode().Perm() != 0o755 {
		t.Errorf("write grant out/sub: %v %v, want 0755, uid 65534", fi, err)
	}
	spec.CloseFiles()
	for _, b := range spec.Rootfs.Binds {
		if b.Tree != nil {
			t.Errorf("CloseFiles left %s open", b.Target)
		}
	}
}

// TestBuildSpecRefusesChangedProjectDir: a start is refused, before
// anything is made or bound, when the project directory was replaced.
func TestBuildSpecRefusesChangedProjectDir(t *testing.T) {
	f := newSpecFixture(t, true, nil, []string{"out"})
	other := filepath.Join(filepath.Dir(f.dir), "other")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(f.dir, f.dir+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(other, f.dir); err != nil {
		t.Fatal(err)
	}
	_, err := BuildSpec(f.opts, f.in)
	refusedAt(t, err, "project-dir", f.dir+" is a symlink (to "+other+")")
	if ents, _ := os.ReadDir(other); len(ents) != 0 {
		t.Errorf("made %v in the directory the link leads to", ents)
	}
}

// TestBuildSpecOlderProject: a project an older cortexd created has no
// identity; its directory is accepted and recorded if its owner is the
// project's, and refused otherwise.
func TestBuildSpecOlderProject(t *testing.T) {
	f := newSpecFixture(t, false, nil, nil)
	ctx := context.Background()
	f.in.Project.SourceID = store.DirIdentity{}
	if err := f.st.SetProjectSource(ctx, "p", store.DirIdentity{}); err != nil {
		t.Fatal(err)
	}

	// Owned by root, the project by uid 65534: refused, nothing recorded.
	_, err := BuildSpec(f.opts, f.in)
	refusedAt(t, err, "project-dir", "is owned by uid 0, not by the project's owner (uid 65534)")
	if p, _ := f.st.GetProject(ctx, "p"); p.SourceID != (store.DirIdentity{}) {
		t.Errorf("recorded %+v for a refused directory", p.SourceID)
	}

	if err := os.Chown(f.dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := BuildSpec(f.opts, f.in); err != nil {
		t.Fatalf("the owner's directory: %v", err)
	}
	p, _ := f.st.GetProject(ctx, "p")
	d, err := sandbox.VerifyDir(f.dir, sandbox.DirIdentity(p.SourceID))
	if err != nil {
		t.Fatalf("the identity recorded does not verify: %+v: %v", p.SourceID, err)
	}
	d.Close()
}
