package daemon

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cortexrt/cortex/internal/bundle"
	"github.com/cortexrt/cortex/internal/deps"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/manifest"
)

// layersDir is the host's layer store: one directory per layer of
// vendored packages (var/lib/cortex/layers/<digest>, 0755 inside a 0700
// directory; sandboxes see a layer through a read-only bind), shared by
// every bundle and agent that holds the same packages.
func (d *Daemon) layersDir() string { return filepath.Join(d.paths.LibDir, "layers") }

// readDepsMeta reads the meta file of the bundle extracted at dir, if it
// has one, and makes sure every layer it names is in the store: a layer
// missing there (removed by hand) is extracted again from b.
func (d *Daemon) readDepsMeta(ctx context.Context, b *bundle.Bundle, dir string) (*deps.Meta, error) {
	raw, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(bundle.MetaPath)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	idx := b.Index()
	meta, err := deps.ParseMeta(raw, idx.LayerDigests())
	if err != nil {
		return nil, err
	}
	for digest := range meta.Layers {
		if _, err := os.Stat(filepath.Join(d.layersDir(), digest)); err == nil {
			continue
		}
		scratch, err := os.MkdirTemp(filepath.Join(d.paths.LibDir, "tmp"), "relayer-")
		if err != nil {
			return nil, err
		}
		os.Remove(scratch)
		err = b.ExtractWith(ctx, scratch, bundle.ExtractOptions{Layers: d.layersDir()})
		os.RemoveAll(scratch)
		if err != nil {
			return nil, err
		}
		break
	}
	return meta, nil
}

// attachPackages gives each agent with packages its layer, after
// checking the interpreter picked for it is the one they were installed
// for. Runtime ranges were pinned already (pinRuntimes prefers the
// layer's runtime).
func (d *Daemon) attachPackages(agents []manifest.ResolvedAgent, meta *deps.Meta) error {
	for i, a := range agents {
		digest, l, ok := meta.For(a.Name)
		if !ok {
			continue
		}
		if (l.Kind == manifest.DepsNode) != manifest.IsNode(a.Runtime) {
			return errdefs.New(errdefs.InvalidArgument, "agent %s: its packages are %s packages but it runs %s; rebuild the bundle", a.Name, l.Kind, a.Runtime)
		}
		ip, err := d.rt.Lookup(a.Runtime)
		if err != nil {
			return errdefs.Wrap(errdefs.InvalidArgument, err)
		}
		if err := l.Check(a.Name, ip); err != nil {
			return err
		}
		agents[i].Packages = &manifest.Packages{Kind: l.Kind, Layer: digest}
	}
	return nil
}

// gcLayers removes the layers no bundle on this host refers to any more,
// and what an interrupted extraction left. The caller holds runMu, so no
// project is being created meanwhile.
func (d *Daemon) gcLayers() {
	used := map[string]bool{}
	bundles, _ := os.ReadDir(filepath.Join(d.paths.LibDir, "bundles"))
	for _, e := range bundles {
		raw, err := os.ReadFile(filepath.Join(d.paths.LibDir, "bundles", e.Name(), filepath.FromSlash(bundle.MetaPath)))
		if err != nil {
			continue
		}
		meta, err := deps.ParseMeta(raw, nil)
		if err != nil {
			continue
		}
		for digest := range meta.Layers {
			used[digest] = true
		}
	}
	ents, _ := os.ReadDir(d.layersDir())
	for _, e := range ents {
		name := e.Name()
		if used[name] {
			continue
		}
		if strings.HasPrefix(name, ".") && !strings.Contains(name, ".extract-") {
			continue
		}
		if err := os.RemoveAll(filepath.Join(d.layersDir(), name)); err != nil {
			d.log.Warn("remove unused layer", "layer", name, "err", err)
			continue
		}
		d.log.Info("removed unused layer", "layer", name)
	}
}

// preferredRuntime is the runtime a range should pin to for an agent
// with packages: the one they were installed for, when the range allows
// it; "" when the agent has none.
func preferredRuntime(meta *deps.Meta, agent, rng string) string {
	_, l, ok := meta.For(agent)
	if !ok {
		return ""
	}
	if cands, _ := manifest.RuntimeCandidates(rng); slices.Contains(cands, l.Runtime) {
		return l.Runtime
	}
	return ""
}
