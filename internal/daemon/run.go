package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/auth"
	"github.com/cortexrt/cortex/internal/bundle"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/llm"
	"github.com/cortexrt/cortex/internal/llm/cassette"
	"github.com/cortexrt/cortex/internal/logkey"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/sandbox"
	"github.com/cortexrt/cortex/internal/store"
	"github.com/cortexrt/cortex/internal/supervisor"
)

// maxUpload caps a bundle upload.
const maxUpload = 4 << 30

// postProject starts the project of a bundle the pipeline's decoder
// (decodeRun) received and authorized: it verifies and unpacks it,
// validates its manifest against this host and starts its agents.
func (d *Daemon) postProject(w http.ResponseWriter, r *http.Request) error {
	up, ok := r.Context().Value(uploadKey{}).(*upload)
	if !ok {
		return errdefs.New(errdefs.Internal, "no decoded upload")
	}
	name := r.Header.Get(api.HeaderFilename)
	if name == "" {
		name = "bundle"
	}
	uid, gid := owner(r.Context())
	var source *sandbox.Dir
	var err error
	if dir := r.Header.Get(api.HeaderSourceDir); dir != "" {
		if source, err = d.checkSourceDir(dir, uid); err != nil {
			return err
		}
		defer source.Close()
	}
	opts := runOptions{hooks: true, llmMode: r.Header.Get(api.HeaderLLMMode), llmCassette: r.Header.Get(api.HeaderLLMCassette), learn: r.Header.Get(api.HeaderLearn) == "1"}
	resp, err := d.createProject(r.Context(), up, name, source, uid, gid, opts)
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusCreated, resp)
	return nil
}

// createProject unpacks and checks a bundle and starts its agents. source,
// when the run came from a project directory, is that directory, opened
// and checked by checkSourceDir: its path and identity are recorded, and
// every start checks the directory is still the same.
// runOptions are what a run asks for beyond its bundle.
type runOptions struct {
	// hooks runs the pre-run and post-run hooks (the canary runs without).
	hooks bool
	// llmMode and llmCassette: see api.HeaderLLMMode, HeaderLLMCassette.
	llmMode, llmCassette string
	// learn: api.HeaderLearn.
	learn bool
}

func (d *Daemon) createProject(ctx context.Context, up *upload, name string, source *sandbox.Dir, uid, gid int, opts runOptions) (_ api.RunResponse, retErr error) {
	upPath := up.path
	d.runMu.Lock()
	defer d.runMu.Unlock()
	// Errors about the upload name the user's file, not our temporary copy.
	rename := func(err error) error {
		if err == nil {
			return nil
		}
		return &errdefs.Error{Cat: errdefs.CategoryOf(err), Msg: strings.ReplaceAll(err.Error(), upPath, name), Hint: errdefs.HintOf(err)}
	}
	b, err := bundle.Open(upPath)
	if err != nil {
		return api.RunResponse{}, rename(err)
	}
	defer b.Close()
	idx := b.Index()
	digest := idx.Digest
	dir := filepath.Join(d.paths.LibDir, "bundles", strings.TrimPrefix(digest, "sha256:"))
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := b.ExtractWith(ctx, dir, bundle.ExtractOptions{Layers: d.layersDir()}); err != nil && !errdefs.IsAlreadyExists(err) {
			return api.RunResponse{}, rename(err)
		}
		// A run refused after this point leaves no unpacked bundle
		// behind (doctor's bundles.orphaned would find it).
		defer func() {
			if retErr != nil {
				_ = os.RemoveAll(dir)
			}
		}()
	}
	meta, err := d.readDepsMeta(ctx, b, dir)
	if err != nil {
		return api.RunResponse{}, rename(err)
	}
	manifestName, projectDir, sourceDir := "cortex.yaml", dir, ""
	var sourceID store.DirIdentity
	if source != nil {
		sourceDir, sourceID = source.Path, store.DirIdentity(source.ID)
		manifestName, projectDir = filepath.Join(sourceDir, "cortex.yaml"), sourceDir
	}
	m, err := manifest.Check(strings.NewReader(string(b.Manifest())), manifestName, manifest.ValidateOptions{
		HostCPUs:         runtime.NumCPU(),
		RuntimeAvailable: d.runtimeAvailable,
		ProjectDir:       projectDir,
	})
	if err != nil {
		return api.RunResponse{}, errdefs.Wrap(errdefs.InvalidArgument, err)
	}
	if m.Project != up.project {
		// The project authorized is the one run, or nothing is.
		return api.RunResponse{}, errdefs.New(errdefs.Internal, "bundle names project %q, %q was authorized", m.Project, up.project)
	}
	agents := m.Resolve(d.defs)
	if err := d.pinRuntimes(agents, meta); err != nil {
		return api.RunResponse{}, err
	}
	if err := d.attachPackages(agents, meta); err != nil {
		return api.RunResponse{}, err
	}
	if opts.hooks {
		if err := d.preRunHooks(ctx, m.Project, digest, name, sourceDir, uid, gid, agents); err != nil {
			return api.RunResponse{}, err
		}
	}
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
	if err := d.setLLMCassette(m, manifestName, dir, opts); err != nil {
		return api.RunResponse{}, err
	}
	d.learning.start(m.Project, opts.learn)
	mjson, _ := json.Marshal(m)
	p := store.Project{Name: m.Project, Digest: digest, BundleDir: dir, SourceDir: sourceDir, SourceID: sourceID, Manifest: mjson, OwnerUID: uid, OwnerGID: gid}
	if err := d.sup.Run(ctx, p, agents); err != nil {
		return api.RunResponse{}, err
	}
	resp := api.RunResponse{Project: m.Project, Digest: digest}
	for _, a := range agents {
		resp.Agents = append(resp.Agents, a.Name)
	}
	if opts.hooks {
		d.postRunHooks(m.Project, digest, uid, gid, resp.Agents)
	}
	if source != nil {
		d.log.Info("project started", logkey.Project, m.Project, "digest", digest, "agents", len(agents), "uid", uid, "by", callerName(ctx), "bundle", name,
			"path", source.Path, "identity", source.ID.String())
	} else {
		d.log.Info("project started", logkey.Project, m.Project, "digest", digest, "agents", len(agents), "uid", uid, "by", callerName(ctx), "bundle", name)
	}
	return resp, nil
}

// checkSourceDir opens the project directory a caller names (following
// symlinks this once) under its symlink-free path, and, for a caller
// other than root, checks that the caller owns it: grants are bound from
// it, and write grants created and chowned in it. The check and the
// identity createProject records are of the same open directory, so
// nothing can be swapped in between; later starts reopen the recorded
// path without following symlinks and compare (supervisor.verifySource).
func (d *Daemon) checkSourceDir(dir string, uid int) (*sandbox.Dir, error) {
	if !filepath.IsAbs(dir) {
		return nil, errdefs.New(errdefs.InvalidArgument, "source dir %q is not absolute", dir)
	}
	src, err := sandbox.OpenDirCanonical(dir)
	if err != nil {
		return nil, errdefs.New(errdefs.InvalidArgument, "source dir %q is not a directory: %v", dir, err)
	}
	if uid != 0 && src.ID.UID != uid {
		d.log.Warn("project refused: source directory not owned by the caller", "uid", uid, "path", src.Path, "owner", src.ID.UID)
		src.Close()
		return nil, errdefs.WithHint(errdefs.New(errdefs.PermissionDenied, "source dir %s is not owned by uid %d", src.Path, uid),
			"run projects from a directory you own, or bundle it (cortex bundle) and run the .cortex file")
	}
	return src, nil
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

// callerName names the API caller of ctx, for logs.
func callerName(ctx context.Context) string {
	if c := auth.CallerFrom(ctx); c != nil {
		return c.Identity.Name
	}
	return ""
}
// setLLMCassette sets how the project's LLM calls are answered: recorded
// (--llm-record), replayed from uploaded cassettes (--llm-replay DIR) or
// from the bundle's llm.replay directory, else by the providers.
func (d *Daemon) setLLMCassette(m *manifest.Manifest, manifestName, bundleDir string, opts runOptions) error {
	mode, files := opts.llmMode, map[string][]byte(nil)
	switch {
	case mode != "" && d.llm == nil:
		return errdefs.New(errdefs.FailedPrecondition, "the LLM gateway is off in this daemon: no recording or replay")
	case d.llm == nil:
		return nil
	case mode == llm.ModeRecord && opts.llmCassette != "":
		return errdefs.New(errdefs.InvalidArgument, "a recording takes no cassette")
	case mode == llm.ModeReplay:
		var err error
		if files, err = d.llm.TakeUpload(opts.llmCassette, m.Project); err != nil {
			return err
		}
	case mode == "" && m.LLM.Replay != "":
		mode = llm.ModeReplay
		var err error
		files, err = cassette.ReadDir(filepath.Join(bundleDir, filepath.FromSlash(path.Clean(m.LLM.Replay))))
		if err != nil {
			p := m.Pos("llm.replay")
			return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "%s:%d:%d: llm.replay: %v", manifestName, p.Line, p.Col, err),
				"record the cassettes with cortex run --llm-record "+m.LLM.Replay+", and keep the directory out of .cortexignore")
		}
	}
	return d.llm.SetCassette(m.Project, mode, files)
}
