package cli

import (
	"context"
	"io"
	"os"

	"github.com/cortexrt/cortex/internal/bundle"
	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/deps"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/runtimes"
)

// pack bundles the project of src into w: its agents' dependencies are
// installed first (internal/deps) for the interpreters this host's
// daemon would pick (its config's runtimes: and default runtime, when
// the config is readable), then packed as layers.
func (e *env) pack(ctx context.Context, src runSource, w io.Writer) (*bundle.Index, error) {
	f, err := os.Open(src.manifestPath)
	if err != nil {
		return nil, err
	}
	m, err := manifest.Parse(f, displayPath(src.manifestPath))
	f.Close()
	if err != nil {
		return nil, errdefs.Wrap(errdefs.InvalidArgument, err)
	}
	cfg, err := config.Load(config.NewPaths(e.cfg.Root).ConfigFile)
	if err != nil {
		cfg = config.Default() // another user's daemon config: its defaults
	}
	defs, err := cfg.DaemonDefaults()
	if err != nil {
		defs, _ = config.Default().DaemonDefaults()
	}
	b := &deps.Builder{Runtimes: runtimes.NewRegistry(cfg.Runtimes, e.cfg.PyenvRoot)}
	if e.tty(e.stderr) {
		b.Log = e.stderr
	} else {
		b.Log = warnOnly{e.stderr}
	}
	res, err := b.Prepare(ctx, src.dir, m.Resolve(defs))
	if err != nil {
		return nil, err
	}
	defer res.Close()
	bar := e.progress("bundling")
	idx, err := bundle.Create(ctx, w, bundle.CreateOptions{
		Dir: src.dir, ManifestPath: src.manifestPath, Progress: bar.update,
		Layers: res.Layers, Meta: res.Meta, Exclude: res.Exclude,
	})
	bar.done()
	return idx, err
}

// warnOnly passes on the warnings of a dependency install and drops its
// progress lines (for output that is not a terminal).
type warnOnly struct{ w io.Writer }

func (o warnOnly) Write(p []byte) (int, error) {
	if len(p) >= 8 && string(p[:8]) == "warning:" {
		return o.w.Write(p)
	}
	return len(p), nil
}
