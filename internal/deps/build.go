package deps

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/cortexrt/cortex/internal/bundle"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/runtimes"
)

// Interpreters finds the interpreter of a runtime name or range, as the
// daemon does (runtimes.Registry).
type Interpreters interface {
	Lookup(runtime string) (runtimes.Interpreter, error)
}

// Builder installs the dependencies of a project's agents.
type Builder struct {
	Runtimes Interpreters
	// Log, when set, gets a line per install and the warnings (a package
	// that failed to import for a reason other than the network).
	Log io.Writer
	// TempDir is where installs are staged ("" = os.TempDir()).
	TempDir string
}

// Result is what Prepare installed: the layers and meta file to pack
// (bundle.CreateOptions Layers and Meta) and the project paths a layer
// replaces (Exclude). Close removes the staged installs once the bundle
// is written.
type Result struct {
	Layers  []*bundle.Layer
	Meta    []byte
	Exclude []string
	// Info is Meta decoded.
	Info *Meta
	tmp  string
}

// Close removes the staged installs.
func (r *Result) Close() error {
	if r == nil || r.tmp == "" {
		return nil
	}
	return os.RemoveAll(r.tmp)
}

// Prepare installs the dependencies of every agent (resolved: runtimes
// may be ranges) of the project in projectDir. Agents with the same
// dependency file and interpreter share one install and one layer. With
// no agent having dependencies, the Result is empty (Meta nil). On error
// nothing is left behind.
func (b *Builder) Prepare(ctx context.Context, projectDir string, agents []manifest.ResolvedAgent) (_ *Result, err error) {
	res := &Result{}
	defer func() {
		if err != nil {
			res.Close()
		}
	}()
	type key struct{ file, interp string }
	installs := map[key]string{} // -> layer digest
	meta := &Meta{Version: MetaVersion, Layers: map[string]LayerInfo{}, Agents: map[string]string{}}
	excluded := map[string]bool{}
	for _, a := range agents {
		src, err := SourceOf(projectDir, a)
		if err != nil {
			return nil, err
		}
		if src == nil {
			continue
		}
		if runtime.GOOS != "linux" {
			return nil, errdefs.WithHint(errdefs.New(errdefs.FailedPrecondition, "agent %s: %s: packages are installed for the Linux interpreter that runs the agent, and this is %s", a.Name, src.File, runtime.GOOS),
				"bundle the project on a Linux host with the agent's interpreter (cortex bundle there), then run the .cortex file")
		}
		ip, err := b.Runtimes.Lookup(a.Runtime)
		if err != nil {
			return nil, fmt.Errorf("agent %s: %w", a.Name, err)
		}
		if (src.Kind == manifest.DepsNode) != manifest.IsNode(ip.Runtime) {
			return nil, errdefs.New(errdefs.InvalidArgument, "agent %s: %s is a %s dependency file but the agent runs %s", a.Name, src.File, src.Kind, ip.Runtime)
		}
		k := key{src.File + fmt.Sprint(src.Scripts), ip.Path}
		if d, ok := installs[k]; ok {
			meta.Agents[a.Name] = d
			continue
		}
		if res.tmp == "" {
			if res.tmp, err = os.MkdirTemp(b.TempDir, "cortex-deps-"); err != nil {
				return nil, err
			}
		}
		stage, err := os.MkdirTemp(res.tmp, "layer-")
		if err != nil {
			return nil, err
		}
		b.logf("Installing %s for %s (%s)...\n", src.File, ip.Runtime, ip.Version)
		var layerDir string
		var info LayerInfo
		switch src.Kind {
		case manifest.DepsPython:
			layerDir, info, err = b.installPython(ctx, projectDir, src, ip, stage)
		default:
			layerDir, info, err = b.installNode(ctx, projectDir, src, ip, stage)
			if dir := filepath.ToSlash(filepath.Dir(filepath.FromSlash(src.File))); dir == "." {
				excluded["node_modules"] = true
			} else {
				excluded[dir+"/node_modules"] = true
			}
		}
		if err != nil {
			return nil, err
		}
		l, err := bundle.ScanLayer(ctx, layerDir)
		if err != nil {
			return nil, err
		}
		info.Kind, info.Source, info.Runtime, info.Version, info.ABI = src.Kind, src.File, ip.Runtime, ip.Version, ip.ABI
		info.Platform = runtime.GOOS + "/" + runtime.GOARCH
		for _, f := range l.Files {
			if f.IsRegular() && (strings.HasSuffix(f.Path, ".so") || strings.Contains(f.Path, ".so.") || strings.HasSuffix(f.Path, ".node")) {
				info.Native = true
				break
			}
		}
		sort.Slice(info.Packages, func(i, j int) bool { return info.Packages[i].Name < info.Packages[j].Name })
		installs[k] = l.Digest
		meta.Agents[a.Name] = l.Digest
		if _, dup := meta.Layers[l.Digest]; !dup {
			meta.Layers[l.Digest] = info
			res.Layers = append(res.Layers, l)
		}
	}
	if len(meta.Agents) == 0 {
		res.Close()
		return &Result{}, nil
	}
	if res.Meta, err = meta.Marshal(); err != nil {
		return nil, err
	}
	res.Info = meta
	for p := range excluded {
		res.Exclude = append(res.Exclude, p)
	}
	sort.Strings(res.Exclude)
	return res, nil
}

func (b *Builder) logf(format string, args ...any) {
	if b.Log != nil {
		fmt.Fprintf(b.Log, format, args...)
	}
}

// tail returns the last n lines of s, trimmed.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}
