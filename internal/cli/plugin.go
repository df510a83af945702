package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/trust"
	"github.com/spf13/cobra"
)

// CLI plugins: `cortex NAME ARGS` (and `cortex-ops NAME ARGS`), NAME not a
// built-in command, runs the executable cortex-NAME from the root's
// etc/cortex/plugins/cli/ (which must be root's and writable by nobody
// else, like hooks), else from $PATH, as git and kubectl do. Built-in
// commands always win. The plugin gets ARGS and the environment, plus
// CORTEX_HOST (the daemon's socket as unix://PATH), CORTEX_ROOT,
// CORTEX_CLI (this binary), CORTEX_PLUGIN_NAME and CORTEX_VERSION.

var pluginNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// pluginInfo is one plugin found.
type pluginInfo struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Source string `json:"source"` // "root" (etc/cortex/plugins/cli) or "path"
	// Shadowed: a built-in command has the name; the plugin never runs.
	Shadowed bool `json:"shadowed,omitempty"`
	// Refused says why a plugin under the root would not run.
	Refused string `json:"refused,omitempty"`
	// Hidden: a plugin of the same name earlier in the search wins.
	Hidden bool `json:"hidden,omitempty"`
}

func rootPluginDir(env config.Env) string {
	return filepath.Join(config.NewPaths(env.Root).PluginsDir, "cli")
}

// findPlugin looks for cortex-NAME; "" when there is none. A plugin under
// the root that is not trusted is an error, not skipped for $PATH.
func findPlugin(env config.Env, name string) (string, error) {
	if !pluginNameRe.MatchString(name) {
		return "", nil
	}
	p := filepath.Join(rootPluginDir(env), "cortex-"+name)
	if _, err := os.Lstat(p); err == nil {
		if err := trust.Executable(p); err != nil {
			return "", errdefs.WithHint(errdefs.Wrap(errdefs.PermissionDenied, fmt.Errorf("plugin %s not run: %w", p, err)),
				"make it root's and writable by nobody else: chown root:root "+p+"; chmod 0755 "+p)
		}
		return p, nil
	}
	if p, err := exec.LookPath("cortex-" + name); err == nil {
		return p, nil
	}
	return "", nil
}

func pluginEnv(e *env, name string) []string {
	self, _ := os.Executable()
	env := os.Environ()
	// The plugin talks to the daemon this CLI would: a remote endpoint
	// (CORTEX_HOST, a context) is inherited as is; the local one is named.
	if ep, err := e.cfg.Endpoint(); err == nil && !ep.Remote() {
		env = append(env, "CORTEX_HOST=unix://"+ep.Socket)
	}
	env = append(env,
		"CORTEX_ROOT="+config.NewPaths(e.cfg.Root).Root,
		"CORTEX_CLI="+self,
		"CORTEX_PLUGIN_NAME="+name,
		"CORTEX_VERSION="+Version,
	)
	return env
}

// pluginCandidate returns the first argument when it names no built-in
// command (nor a flag), so it may be a plugin.
func pluginCandidate(root *cobra.Command, args []string) (string, bool) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return "", false
	}
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == args[0] || c.HasAlias(args[0]) {
			return "", false
		}
	}
	return args[0], true
}

// dispatchPlugin runs a plugin for an unknown command, or explains that
// there is none. handled is false when args name a built-in command.
func dispatchPlugin(e *env, root *cobra.Command, args []string) (code int, handled bool) {
	name, ok := pluginCandidate(root, args)
	if !ok {
		return 0, false
	}
	p, err := findPlugin(e.cfg, name)
	if err != nil {
		printError(e.stderr, root.Name(), err)
		return errdefs.ExitCode(err), true
	}
	if p == "" {
		err := errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "unknown command %q: not a %s command, and no plugin cortex-%s in %s or $PATH", name, root.Name(), name, rootPluginDir(e.cfg)),
			root.Name()+" --help lists the commands; cortex plugin list the plugins")
		printError(e.stderr, root.Name(), err)
		return errdefs.ExitCode(err), true
	}
	return runPlugin(e, p, name, args[1:]), true
}

func listPlugins(e *env, builtins *cobra.Command) []pluginInfo {
	builtin := map[string]bool{}
	for _, c := range builtins.Commands() {
		builtin[c.Name()] = true
	}
	seen := map[string]bool{}
	var out []pluginInfo
	add := func(p pluginInfo) {
		p.Shadowed = builtin[p.Name]
		p.Hidden = seen[p.Name]
		seen[p.Name] = true
		out = append(out, p)
	}
	dir := rootPluginDir(e.cfg)
	if ents, err := os.ReadDir(dir); err == nil {
		for _, ent := range ents {
			name, ok := strings.CutPrefix(ent.Name(), "cortex-")
			if !ok || !pluginNameRe.MatchString(name) {
				continue
			}
			p := pluginInfo{Name: name, Path: filepath.Join(dir, ent.Name()), Source: "root"}
			if err := trust.Executable(p.Path); err != nil {
				p.Refused = err.Error()
			}
			add(p)
		}
	}
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		ents, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, ent := range ents {
			name, ok := strings.CutPrefix(ent.Name(), "cortex-")
			if !ok || !pluginNameRe.MatchString(name) || name == "ops" {
				continue
			}
			p := filepath.Join(d, ent.Name())
			if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
				continue
			}
			add(pluginInfo{Name: name, Path: p, Source: "path"})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func pluginCmd(e *env, root func() *cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugin",
		Short: "CLI plugins: cortex-NAME executables run as `cortex NAME`",
	}
	var asJSON bool
	list := &cobra.Command{
		Use:   "list [--json]",
		Short: "List the plugins in etc/cortex/plugins/cli and $PATH",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			ps := listPlugins(e, root())
			if asJSON {
				if ps == nil {
					ps = []pluginInfo{}
				}
				return writeJSONTo(e.stdout, ps)
			}
			if len(ps) == 0 {
				fmt.Fprintf(e.stdout, "No plugins (cortex-NAME executables in %s or $PATH).\n", rootPluginDir(e.cfg))
				return nil
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSOURCE\tPATH\tNOTE")
			for _, p := range ps {
				note := ""
				switch {
				case p.Refused != "":
					note = "refused: " + p.Refused
				case p.Shadowed:
					note = "shadowed by the built-in command"
				case p.Hidden:
					note = "hidden by the one above"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Name, p.Source, p.Path, dash(note))
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(list)
	return cmd
}
