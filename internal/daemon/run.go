package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/bundle"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/store"
	"github.com/cortexrt/cortex/internal/supervisor"
)

// maxUpload caps a bundle upload.
const maxUpload = 4 << 30

// postProject receives a bundle, verifies and unpacks it, validates its
// manifest against this host and starts its agents.
func (d *Daemon) postProject(w http.ResponseWriter, r *http.Request) error {
	if err := d.walls.refuseMissing(); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Join(d.paths.LibDir, "tmp"), "upload-*.cortex")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	n, err := io.Copy(tmp, io.LimitReader(r.Body, maxUpload+1))
	if err != nil {
		return fmt.Errorf("receive bundle: %w", err)
	}
	if n > maxUpload {
		return errdefs.New(errdefs.InvalidArgument, "bundle larger than %d GiB", maxUpload>>30)
	}
	name := r.Header.Get(api.HeaderFilename)
	if name == "" {
		name = "bundle"
	}
	sourceDir := r.Header.Get(api.HeaderSourceDir)
	if sourceDir != "" {
		if err := checkSourceDir(sourceDir, peerOf(r.Context())); err != nil {
			return err
		}
	}
	resp, err := d.createProject(r.Context(), tmp.Name(), name, sourceDir, peerOf(r.Context()))
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusCreated, resp)
	return nil
}

func (d *Daemon) createProject(ctx context.Context, path, name, sourceDir string, peer Peer) (api.RunResponse, error) {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	// Errors about the upload name the user's file, not our temporary copy.
	rename := func(err error) error {
		if err == nil {
			return nil
		}
		return &errdefs.Error{Cat: errdefs.CategoryOf(err), Msg: strings.ReplaceAll(err.Error(), path, name), Hint: errdefs.HintOf(err)}
	}
	b, err := bundle.Open(path)
	if err != nil {
		return api.RunResponse{}, rename(err)
	}
	defer b.Close()
	idx := b.Index()
	digest := idx.Digest
	dir := filepath.Join(d.paths.LibDir, "bundles", strings.TrimPrefix(digest, "sha256:"))
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := b.Extract(ctx, dir, bundle.DefaultLimits(), nil); err != nil && !errdefs.IsAlreadyExists(err) {
			return api.RunResponse{}, rename(err)
		}
	}
	source := "cortex.yaml"
	if sourceDir != "" {
		source = filepath.Join(sourceDir, "cortex.yaml")
	}
	m, err := manifest.Check(strings.NewReader(string(b.Manifest())), source, manifest.ValidateOptions{
		HostCPUs:         runtime.NumCPU(),
		RuntimeAvailable: d.runtimeAvailable,
		ProjectDir:       projectDirFor(sourceDir, dir),
	})
	if err != nil {
		return api.RunResponse{}, errdefs.Wrap(errdefs.InvalidArgument, err)
	}
	agents := m.Resolve(d.defs)
	if d.bus != nil {
		if err := d.bus.SetBroker(ctx, m.Project, m.GlobalCapabilities.BusBroker); err != nil {
			return api.RunResponse{}, fmt.Errorf("bus.broker: %w", err)
		}
	}
	if d.llm != nil {
		if err := d.llm.SetProjectBudget(m.Project, m.GlobalCapabilities.LLMBudget); err != nil {
			return api.RunResponse{}, err
		}
	}
	mjson, _ := json.Marshal(m)
	p := store.Project{Name: m.Project, Digest: digest, BundleDir: dir, SourceDir: sourceDir, Manifest: mjson, OwnerUID: peer.UID, OwnerGID: peer.GID}
	if err := d.sup.Run(ctx, p, agents); err != nil {
		return api.RunResponse{}, err
	}
	resp := api.RunResponse{Project: m.Project, Digest: digest}
	for _, a := range agents {
		resp.Agents = append(resp.Agents, a.Name)
	}
	d.log.Info("project started", "project", m.Project, "digest", digest, "agents", len(agents), "uid", peer.UID, "bundle", name)
	return resp, nil
}

// checkSourceDir: grants are bound from the source directory the caller
// names, so a caller other than root may only name a directory it owns.
func checkSourceDir(dir string, peer Peer) error {
	if !filepath.IsAbs(dir) {
		return errdefs.New(errdefs.InvalidArgument, "source dir %q is not absolute", dir)
	}
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return errdefs.New(errdefs.InvalidArgument, "source dir %q is not a directory", dir)
	}
	if peer.UID == 0 {
		return nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) != peer.UID {
		return errdefs.WithHint(errdefs.New(errdefs.PermissionDenied, "source dir %s is not owned by uid %d", dir, peer.UID),
			"run projects from a directory you own, or bundle it (cortex bundle) and run the .cortex file")
	}
	return nil
}

func projectDirFor(sourceDir, bundleDir string) string {
	if sourceDir != "" {
		if fi, err := os.Stat(sourceDir); err == nil && fi.IsDir() {
			return sourceDir
		}
	}
	return bundleDir
}

// runtimeAvailable adapts the registry's error to the manifest's "what;
// how to fix" form.
func (d *Daemon) runtimeAvailable(rt string) error {
	err := d.rt.Available(rt)
	if err == nil {
		return nil
	}
	if h := errdefs.HintOf(err); h != "" {
		return fmt.Errorf("%v; %s", err, h)
	}
	return err
}

// agentWalls overlays the daemon's view (missing walls) on an agent's.
func (d *Daemon) agentWalls(w []supervisor.Wall) []supervisor.Wall {
	byName := map[string]string{}
	for _, x := range d.walls.List {
		if !x.Up {
			byName[x.Name] = x.Detail
		}
	}
	for i := range w {
		if why, ok := byName[w[i].Name]; ok {
			w[i].Up = false
			w[i].Detail = why
		}
	}
	return w
}
