package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/runtimes"
	"github.com/spf13/cobra"
)

func validateCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "validate [PATH]",
		Short: "Check a cortex.yaml and print every problem (exit 2 if any)",
		Long: `Check a manifest without running it: syntax, schema, names, quantities, entrypoints,
capabilities, and that each runtime has an interpreter on this host. PATH is a cortex.yaml
or a directory holding one (default: the current directory). Every problem is printed as
file:line:col: field: what is wrong; how to fix it.`,
		Args: maxArgs(1, "at most one PATH"),
		RunE: func(c *cobra.Command, args []string) error {
			path := "."
			if len(args) == 1 {
				path = args[0]
			}
			src, err := resolveRunSource(path)
			if err != nil {
				return err
			}
			if src.manifestPath == "" {
				return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "%s is not a manifest or project directory", path), "to check a bundle: cortex bundle inspect "+path)
			}
			f, err := os.Open(src.manifestPath)
			if err != nil {
				return err
			}
			defer f.Close()
			overrides, err := e.runtimeOverrides()
			if err != nil {
				return err
			}
			reg := runtimes.NewRegistry(overrides, e.cfg.PyenvRoot)
			m, err := manifest.Check(f, displayPath(src.manifestPath), manifest.ValidateOptions{
				HostCPUs: runtime.NumCPU(),
				RuntimeAvailable: func(rt string) error {
					err := reg.Available(rt)
					if err != nil && errdefs.HintOf(err) != "" {
						return fmt.Errorf("%v; %s", err, errdefs.HintOf(err))
					}
					return err
				},
				ProjectDir: src.dir,
			})
			if err != nil {
				var ps manifest.Problems
				if errors.As(err, &ps) {
					fmt.Fprint(e.stderr, ps.Error()+"\n")
					fmt.Fprintf(e.stderr, "%d problem(s)\n", len(ps))
					return exitError{errdefs.ExitInvalid}
				}
				return err
			}
			fmt.Fprintf(e.stdout, "%s: valid (project %s, %d agent(s))\n", displayPath(src.manifestPath), m.Project, len(m.Agents))
			return nil
		},
	}
}

// runtimeOverrides reads the daemon config's runtimes: section, which
// decides the interpreters the daemon would use. A broken config is an
// error (the daemon would refuse it too); one this user may not read is
// reported and checked without overrides.
func (e *env) runtimeOverrides() (map[string]string, error) {
	path := config.NewPaths(e.cfg.Root).ConfigFile
	cfg, err := config.Load(path)
	switch {
	case errors.Is(err, fs.ErrPermission):
		fmt.Fprintf(e.stderr, "cortex: cannot read %s (%v); checking runtimes without its overrides\n", path, err)
		return nil, nil
	case err != nil:
		return nil, errdefs.WithHint(errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("daemon config: %w", err)), "fix "+path+"; cortexd refuses to start with it too")
	}
	return cfg.Runtimes, nil
}
