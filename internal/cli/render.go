package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cortexrt/cortex/internal/bundle"
	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/deps"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/kube"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/oci"
)

// renderFlags are shared by render and deploy.
type renderFlags struct {
	kubernetes bool
	configFile string
	bundleRef  string
}

func (f *renderFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.configFile, "config", "", "cluster settings (default: "+kube.ConfigFile+" beside cortex.yaml, if any)")
	cmd.Flags().StringVar(&f.bundleRef, "bundle", "", "the bundle's registry reference, pinned by digest (default: registry: of the config + project + the bundle's digest)")
}

func renderCmd(e *env) *cobra.Command {
	var f renderFlags
	var outDir string
	cmd := &cobra.Command{
		Use:   "render --kubernetes [-o DIR] [--config FILE] [--bundle REF] [PATH|REF]",
		Short: "Render a swarm as Kubernetes objects",
		Long: `Render the swarm PATH (a project directory, a cortex.yaml, a .cortex bundle or a registry
reference; default .) as Kubernetes objects: a namespace per project, one workload per agent
(Deployment for restart_policy always, Job otherwise), its egress gateway, network policies
and volumes, with every wall of the manifest mapped to the cluster's own mechanisms (see
docs/cluster.md). A setting the cluster cannot enforce is an error naming it.

Cluster specifics (the bundle registry, volumes for filesystem.write, images, the seccomp
mode) come from ` + kube.ConfigFile + ` beside cortex.yaml or --config. With -o DIR one file per
object is written, named in apply order; otherwise one YAML stream goes to stdout.`,
		Args: maxArgs(1, "at most one PATH or REF"),
		RunE: func(c *cobra.Command, args []string) error {
			if !f.kubernetes {
				return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "choose a render target"), "cortex render --kubernetes")
			}
			path := "."
			if len(args) == 1 {
				path = args[0]
			}
			res, _, cleanup, err := e.renderPath(c.Context(), path, &f)
			if err != nil {
				return err
			}
			defer cleanup()
			if outDir == "" {
				out, err := kube.Stream(res.Objects)
				if err != nil {
					return err
				}
				_, err = e.stdout.Write(out)
				return err
			}
			names, err := kube.WriteDir(outDir, res.Objects)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "wrote %d objects to %s (namespace %s)\n", len(names), outDir, res.Namespace)
			return nil
		},
	}
	cmd.Flags().BoolVar(&f.kubernetes, "kubernetes", false, "render Kubernetes objects (the only target)")
	cmd.Flags().StringVarP(&outDir, "output", "o", "", "write one YAML file per object into DIR")
	f.register(cmd)
	return cmd
}

// rendered is a render with the bundle it describes.
type rendered struct {
	res      *kube.Result
	artifact *oci.Artifact
	cfg      *kube.Config
	project  string
}

// renderPath bundles (or pulls) PATH, reads its manifest and the cluster
// settings, and renders.
func (e *env) renderPath(ctx context.Context, path string, f *renderFlags) (*kube.Result, *rendered, func(), error) {
	src, err := resolveRunSource(path)
	if err != nil {
		return nil, nil, nil, err
	}
	cfgPath, optional := f.configFile, false
	if cfgPath == "" && src.dir != "" {
		cfgPath, optional = filepath.Join(src.dir, kube.ConfigFile), true
	}
	if cfgPath != "" {
		cfgPath = displayPath(cfgPath)
	}
	cfg, err := kube.LoadConfig(cfgPath, optional)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpDir, err := os.MkdirTemp("", "cortex-render-")
	if err != nil {
		return nil, nil, nil, err
	}
	cleanup := func() { os.RemoveAll(tmpDir) }
	fail := func(err error) (*kube.Result, *rendered, func(), error) { cleanup(); return nil, nil, nil, err }

	file, source, pulledRef := src.bundleFile, "", ""
	switch {
	case src.ref != "":
		file = filepath.Join(tmpDir, "bundle.cortex")
		res, err := e.pull(ctx, src.ref, file, "")
		if err != nil {
			return fail(err)
		}
		pulledRef = res.Ref.Name() + "@" + res.Manifest.Digest.String()
		source = src.ref + ":cortex.yaml"
	case src.bundleFile != "":
		source = displayPath(src.bundleFile) + ":cortex.yaml"
	default:
		if err := checkManifestFile(src.manifestPath); err != nil {
			return fail(err)
		}
		file = filepath.Join(tmpDir, "bundle.cortex")
		out, err := os.Create(file)
		if err != nil {
			return fail(err)
		}
		_, err = bundle.Create(ctx, out, bundle.CreateOptions{Dir: src.dir, ManifestPath: src.manifestPath})
		out.Close()
		if err != nil {
			return fail(err)
		}
		source = displayPath(src.manifestPath)
	}
	b, err := bundle.Open(file)
	if err != nil {
		return fail(err)
	}
	idx := b.Index()
	mbytes := b.Manifest()
	b.Close()
	m, err := manifest.Check(strings.NewReader(string(mbytes)), source, manifest.ValidateOptions{})
	if err != nil {
		return fail(errdefs.Wrap(errdefs.InvalidArgument, err))
	}
	defs, err := config.Default().DaemonDefaults()
	if err != nil {
		return fail(err)
	}
	art, err := oci.Describe(ctx, file, m.Project)
	if err != nil {
		return fail(err)
	}
	ref, err := bundleRef(f.bundleRef, cfg, pulledRef, m.Project, art)
	if err != nil {
		return fail(err)
	}
	has := map[string]bool{}
	for _, fl := range idx.Files {
		has[fl.Path] = true
	}
	// Vendored packages are not carried into pods yet: refuse rather
	// than render agents that would fail to import them.
	agents := m.Resolve(defs)
	withPkgs := has[bundle.MetaPath]
	if !withPkgs && src.dir != "" {
		for _, a := range agents {
			if s, err := deps.SourceOf(src.dir, a); err == nil && s != nil {
				withPkgs = true
				break
			}
		}
	}
	if withPkgs {
		return fail(errdefs.WithHint(errdefs.New(errdefs.Unsupported, "%s: its agents have third-party packages, which Kubernetes rendering does not carry into pods yet", source),
			"run it on a node (cortex run), or render a project without dependencies"))
	}
	in := kube.Input{
		Manifest: m, Agents: agents, Bundle: ref, Config: cfg, Version: Version,
		BundleHas: func(p string) bool { return has[p] },
	}
	if cfg.VerifyKey != "" {
		kp := cfg.VerifyKey
		if !filepath.IsAbs(kp) {
			kp = filepath.Join(cfg.Dir, kp)
		}
		pem, err := os.ReadFile(kp)
		if err != nil {
			return fail(errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("%s: verify_key: %w", cfg.Source, err)))
		}
		if _, err := oci.ParsePublicKey(kp, pem); err != nil {
			return fail(err)
		}
		in.VerifyKey = pem
	}
	if cfg.LLMConfig != "" {
		if in.LLMConfig, in.LLMAliases, err = loadLLMConfig(cfg); err != nil {
			return fail(err)
		}
	}
	res, err := kube.Render(in)
	if err != nil {
		return fail(err)
	}
	return res, &rendered{res: res, artifact: art, cfg: cfg, project: m.Project}, cleanup, nil
}

// bundleRef decides the registry reference pods pull: the flag, then the
// config's bundle:, then the pulled reference, then registry:/project at
// the bundle's digest. A pinned reference must match the bundle.
func bundleRef(flag string, cfg *kube.Config, pulled, project string, art *oci.Artifact) (string, error) {
	want := art.Desc.Digest.String()
	pinned := flag
	if pinned == "" {
		pinned = cfg.Bundle
	}
	if pinned == "" && pulled != "" {
		return pulled, nil
	}
	if pinned == "" && cfg.Registry != "" {
		pinned = strings.TrimSuffix(cfg.Registry, "/") + "/" + project + "@" + want
	}
	if pinned == "" {
		return "", errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "where does the cluster pull the bundle from?"),
			"set registry: REGISTRY/PATH in "+kube.ConfigFile+" (cortex deploy --push pushes there), or pass --bundle REF@DIGEST")
	}
	r, err := oci.ParseReference(pinned)
	if err != nil {
		return "", err
	}
	if r.Digest == "" {
		return "", errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "bundle %s is not pinned by digest", pinned),
			"pods pull the exact bundle: write REF@"+want)
	}
	if r.Digest != want {
		return "", errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "bundle %s names %s, but this project bundles to %s", pinned, r.Digest, want),
			"push this bundle (cortex push) and pin its digest, or render the bundle that was pushed")
	}
	return r.String(), nil
}

// loadLLMConfig reads and checks cortex.kube.yaml's llm_config: the llm:
// section of a daemon config, with provider keys from environment
// variables (in the cluster, Secret cortex-llm-keys).
func loadLLMConfig(cfg *kube.Config) ([]byte, []string, error) {
	p := cfg.LLMConfig
	if !filepath.IsAbs(p) {
		p = filepath.Join(cfg.Dir, p)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, nil, errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("%s: llm_config: %w", cfg.Source, err))
	}
	lc, err := config.ParseLLM(data, p)
	if err != nil {
		return nil, nil, errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("%s: %w", p, err))
	}
	for _, pr := range lc.Providers {
		if pr.APIKeyFile != "" {
			return nil, nil, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "%s: provider %s: api_key_file cannot be used on Kubernetes", p, pr.Name),
				"use api_key_env: NAME and put NAME in Secret "+kube.SecretLLMKeys)
		}
	}
	var aliases []string
	for a := range lc.Aliases {
		aliases = append(aliases, a)
	}
	sort.Strings(aliases)
	return data, aliases, nil
}
