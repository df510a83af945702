package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/kube"
	"github.com/cortexrt/cortex/internal/oci"
)

func deployCmd(e *env) *cobra.Command {
	var f renderFlags
	var kubeconfig, kctx string
	var push, dryRun, asJSON bool
	cmd := &cobra.Command{
		Use:   "deploy --context CTX [--kubeconfig FILE] [--push] [--dry-run] [--json] [PATH|REF]",
		Short: "Render a swarm and apply it to a Kubernetes cluster (server-side apply)",
		Long: `Render PATH as cortex render --kubernetes does and apply every object to the cluster of the
kubeconfig context CTX with server-side apply (field manager "cortex", unknown fields
refused). Objects go in render order; each line says created, configured or unchanged, so a
second deploy of the same swarm prints only "unchanged". The API server's warnings (Pod
Security, deprecations) are printed to stderr.

With --push the bundle is first pushed to the registry: of ` + kube.ConfigFile + `, tagged with its
bundle digest. Deploy also creates the Secrets render never writes: the bus token (copied
from the system namespace, where the Helm chart made it) and, for agents with llm.access,
one LLM gateway token each. --dry-run asks the server to validate and admit everything
without persisting anything (the project's namespace must exist).`,
		Args: maxArgs(1, "at most one PATH or REF"),
		RunE: func(c *cobra.Command, args []string) error {
			f.kubernetes = true
			path := "."
			if len(args) == 1 {
				path = args[0]
			}
			return e.deploy(c.Context(), path, &f, kubeconfig, kctx, push, dryRun, asJSON)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&kctx, "context", "", "kubeconfig context (default: the current context)")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
	cmd.Flags().BoolVar(&push, "push", false, "push the bundle to the configured registry first")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate and admit on the server without persisting")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the results as JSON")
	return cmd
}

type deployOut struct {
	Kind      string   `json:"kind"`
	Namespace string   `json:"namespace,omitempty"`
	Name      string   `json:"name"`
	Outcome   string   `json:"outcome"`
	Warnings  []string `json:"warnings,omitempty"`
}

func (e *env) deploy(ctx context.Context, path string, f *renderFlags, kubeconfig, kctx string, push, dryRun, asJSON bool) error {
	res, r, cleanup, err := e.renderPath(ctx, path, f)
	if err != nil {
		return err
	}
	defer cleanup()
	if push {
		if r.cfg.Registry == "" {
			return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "--push needs registry: in %s", kube.ConfigFile), "registry: registry.example.com/team")
		}
		tag := strings.TrimSuffix(r.cfg.Registry, "/") + "/" + r.project + ":" + short(r.artifact.BundleDigest)
		bar := e.progress("pushing")
		cl := &oci.Client{Progress: bar.update, UserAgent: "cortex/" + Version}
		pr, err := cl.Push(ctx, r.artifact.Path, tag, oci.PushOptions{Project: r.project})
		bar.done()
		if err != nil {
			return err
		}
		if pr.Manifest.Digest != r.artifact.Desc.Digest {
			return errdefs.New(errdefs.Internal, "pushed %s as %s, but rendered %s", tag, pr.Manifest.Digest, r.artifact.Desc.Digest)
		}
		if !asJSON {
			fmt.Fprintf(e.stdout, "pushed %s (%s)\n", tag, pr.Manifest.Digest)
		}
	}
	cluster, err := kube.LoadCluster(ctx, kube.KubeconfigPaths(kubeconfig), kctx)
	if err != nil {
		return err
	}
	var out []deployOut
	report := func(a kube.Applied) {
		out = append(out, deployOut{Kind: a.Kind, Namespace: a.Namespace, Name: a.Name, Outcome: string(a.Outcome), Warnings: a.Warnings})
		if asJSON {
			return
		}
		fmt.Fprintf(e.stdout, "%-10s %s/%s\n", a.Outcome, a.Kind, a.Name)
		for _, w := range a.Warnings {
			fmt.Fprintf(e.stderr, "Warning: %s/%s: %s\n", a.Kind, a.Name, w)
		}
	}
	if dryRun {
		// A server-side dry run of namespaced objects needs their namespace.
		if _, ok, err := cluster.Get(ctx, res.Objects[0]); err != nil {
			return err
		} else if !ok {
			return errdefs.WithHint(errdefs.New(errdefs.FailedPrecondition, "--dry-run needs namespace %s to exist", res.Namespace),
				"deploy once, or create it: kubectl create namespace "+res.Namespace)
		}
	}
	var llmAgents []string
	for _, w := range res.Walls {
		if strings.HasSuffix(w.Field, ".llm.access") {
			llmAgents = append(llmAgents, w.Agent)
		}
	}
	for i, o := range res.Objects {
		a, err := cluster.Apply(ctx, o, kube.ApplyOptions{DryRun: dryRun})
		if err != nil {
			return err
		}
		report(a)
		if i == 0 && !dryRun { // the namespace exists now
			done, warns, err := cluster.EnsureSecrets(ctx, kube.SecretsOptions{Namespace: res.Namespace, SystemNamespace: r.cfg.SystemNamespace,
				Project: r.project, LLMAgents: llmAgents})
			if err != nil {
				return err
			}
			for _, d := range done {
				report(d)
			}
			for _, w := range warns {
				fmt.Fprintf(e.stderr, "cortex: warning: %s\n", w)
			}
		}
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	return nil
}
