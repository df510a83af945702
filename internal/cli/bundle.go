package cli

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/cortexrt/cortex/internal/bundle"
	"github.com/cortexrt/cortex/internal/deps"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/spf13/cobra"
)

func bundleCmd(e *env) *cobra.Command {
	var cfgPath, output string
	cmd := &cobra.Command{
		Use:   "bundle --config cortex.yaml --output my.cortex",
		Short: "Pack a project into a reproducible .cortex bundle",
		Long: `Pack the project directory of --config (honouring .cortexignore) into a single .cortex
archive with a SHA-256 per file and a bundle digest. The same tree always gives the same bytes.`,
		Args: exactArgs(0, "no arguments (use --config and --output)"),
		RunE: func(c *cobra.Command, args []string) error {
			if output == "" {
				return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "--output is required"), "cortex bundle --config cortex.yaml --output my.cortex")
			}
			abs, err := filepath.Abs(cfgPath)
			if err != nil {
				return err
			}
			src, err := resolveRunSource(abs)
			if err != nil {
				return err
			}
			if src.manifestPath == "" {
				return errdefs.New(errdefs.InvalidArgument, "--config %s is not a cortex.yaml", cfgPath)
			}
			if err := checkManifestFile(src.manifestPath); err != nil {
				return err
			}
			return e.writeBundle(c.Context(), src, output)
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "cortex.yaml", "the project's manifest; its directory is packed")
	cmd.Flags().StringVarP(&output, "output", "o", "", "the .cortex file to write")
	cmd.AddCommand(bundleInspectCmd(e))
	return cmd
}

// writeBundle writes to a temporary file beside output and renames it, so
// a failed bundle never leaves a partial file.
func (e *env) writeBundle(ctx context.Context, src runSource, output string) error {
	outAbs, err := filepath.Abs(output)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(outAbs), ".cortex-bundle-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	idx, err := e.pack(ctx, src, tmp)
	if err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), outAbs); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s %s (%d files, %s)\n", output, idx.Digest, len(idx.Files), humanBytes(uint64(idx.TotalSize())))
	return nil
}

func bundleInspectCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect [--json] FILE",
		Short: "Show a bundle's manifest, files and digest (verifying every file)",
		Args:  exactArgs(1, "one FILE"),
		RunE: func(c *cobra.Command, args []string) error {
			b, err := bundle.Open(args[0])
			if err != nil {
				return err
			}
			defer b.Close()
			if err := b.Verify(c.Context(), bundle.DefaultLimits()); err != nil {
				return err
			}
			idx := b.Index()
			var meta *deps.Meta
			if raw, err := b.ReadFile(c.Context(), bundle.MetaPath, 16<<20); err == nil {
				if meta, err = deps.ParseMeta(raw, idx.LayerDigests()); err != nil {
					return err
				}
			} else if !errdefs.IsNotFound(err) {
				return err
			}
			if asJSON {
				out := map[string]any{"digest": idx.Digest, "manifest": string(b.Manifest()), "files": idx.Files}
				if meta != nil {
					out["packages"] = meta
				}
				return writeJSONTo(e.stdout, out)
			}
			fmt.Fprintf(e.stdout, "Digest: %s\nFiles: %d (%s)\n\n--- cortex.yaml ---\n%s\n", idx.Digest, len(idx.Files), humanBytes(uint64(idx.TotalSize())), b.Manifest())
			if meta != nil {
				fmt.Fprintf(e.stdout, "--- packages ---\n")
				printPackages(e.stdout, meta)
			}
			fmt.Fprintf(e.stdout, "--- files ---\n")
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			for _, f := range idx.Files {
				sum := f.SHA256
				if len(sum) > 16 {
					sum = sum[:16]
				}
				extra := ""
				if f.Mode&fs.ModeSymlink != 0 {
					extra = "-> " + f.Link
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", f.Mode, f.Size, sum, f.Path, extra)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printPackages lists the distributions of each layer with the agents
// that use it.
func printPackages(w io.Writer, meta *deps.Meta) {
	users := map[string][]string{}
	for a, d := range meta.Agents {
		users[d] = append(users[d], a)
	}
	digests := make([]string, 0, len(meta.Layers))
	for d := range meta.Layers {
		digests = append(digests, d)
	}
	sort.Strings(digests)
	for _, d := range digests {
		l := meta.Layers[d]
		sort.Strings(users[d])
		fmt.Fprintf(w, "%s from %s for %s %s (%s), layer %s, agents: %s\n", l.Kind, l.Source, l.Runtime, l.Version, l.ABI, short(d), strings.Join(users[d], ", "))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, p := range l.Packages {
			fmt.Fprintf(tw, "  %s\t%s\n", p.Name, p.Version)
		}
		tw.Flush()
	}
}
