package cli

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/learn"
	"github.com/cortexrt/cortex/internal/manifest"
)

// checkLearnFlags refuses what --learn cannot do.
func checkLearnFlags(opts runOptions, src runSource) error {
	switch {
	case opts.write && !opts.learn:
		return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "--write applies what --learn learned"), "cortex run --learn --write DIR")
	case !opts.learn:
		return nil
	case opts.detach:
		return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "--learn needs an attached run: it reports when the agents end"), "drop -d")
	case src.manifestPath == "":
		return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "--learn needs the project's directory or cortex.yaml, which it proposes changes to"), "cortex run --learn DIR")
	}
	return nil
}

// reportLearned asks the daemon what the project's agents were refused
// and shows, as a diff of the project's cortex.yaml, the capability lines
// that would have allowed it; with write, it applies them in place.
func (e *env) reportLearned(ctx context.Context, c *api.Client, project string, src runSource, write bool) error {
	var rep api.DenialsReport
	if err := c.Do(ctx, http.MethodGet, "/projects/"+url.PathEscape(project)+"/denials", nil, nil, &rep); err != nil {
		return err
	}
	denials := make([]learn.Denial, len(rep.Denials))
	for i, d := range rep.Denials {
		denials[i] = learn.Denial(d)
	}
	orig, err := os.ReadFile(src.manifestPath)
	if err != nil {
		return err
	}
	name := displayPath(src.manifestPath)
	m, err := manifest.Parse(bytes.NewReader(orig), name)
	if err != nil {
		return errdefs.Wrap(errdefs.InvalidArgument, err)
	}
	sugg, notes := learn.Suggest(m, denials, src.dir)
	if rep.FSUnavailable != "" {
		fmt.Fprintf(e.stderr, "learn: file system refusals were not observed: %s\n", rep.FSUnavailable)
	}
	for _, n := range notes {
		fmt.Fprintf(e.stderr, "learn: %s: %s\n", n.Agent, n.Text)
	}
	if len(sugg) == 0 {
		fmt.Fprintf(e.stdout, "Learned: nothing was refused that a capability would allow; %s needs no change.\n", name)
		return nil
	}
	patched, err := learn.Patch(orig, name, sugg)
	if err != nil {
		for _, s := range sugg {
			fmt.Fprintf(e.stdout, "  %s: - %s: [%s]   # %s\n", s.Agent, s.Capability, s.Value, s.Why)
		}
		return err
	}
	fmt.Fprintf(e.stdout, "Learned %d capability line(s) for %s:\n", len(sugg), name)
	fmt.Fprint(e.stdout, learn.Diff(name, name+" (learned)", orig, patched))
	for _, s := range sugg {
		fmt.Fprintf(e.stdout, "  %s: %s %s: %s\n", s.Agent, s.Capability, s.Value, s.Why)
	}
	if !write {
		fmt.Fprintf(e.stdout, "Apply with: cortex run --learn --write %s (or edit %s)\n", displayPath(src.dir), name)
		return nil
	}
	if err := writeInPlace(src.manifestPath, patched); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Wrote %s.\n", name)
	return nil
}

// writeInPlace replaces path's content atomically, keeping its mode.
func writeInPlace(path string, data []byte) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".learn-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return firstErr(werr, cerr)
	}
	if err := os.Chmod(tmp.Name(), fi.Mode().Perm()); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
