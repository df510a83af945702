package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/scaffold"
	"github.com/spf13/cobra"
)

func initCmd(e *env) *cobra.Command {
	var tmpl, name string
	var list []string
	for _, t := range scaffold.Templates {
		list = append(list, fmt.Sprintf("  %-7s %s", t.Name, t.Summary))
	}
	cmd := &cobra.Command{
		Use:   "init [DIR] [--template python|node|swarm|llm] [--name NAME]",
		Short: "Write a new project that cortex run runs at once",
		Long: `Write a new Cortex project into DIR (default: the current directory; made when missing):
cortex.yaml, the agents' code, their dependency file and a README. Nothing is overwritten:
a directory that already holds one of the files is refused and nothing is written.
The project is named after DIR unless --name says otherwise.

Templates:
` + strings.Join(list, "\n"),
		Args: maxArgs(1, "at most one DIR"),
		RunE: func(c *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			if name == "" {
				name = scaffold.ProjectName(abs)
			} else if scaffold.ProjectName(name) != name {
				return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "--name %q is not a project name (lowercase letters, digits and '-')", name), "--name "+scaffold.ProjectName(name))
			}
			if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
				return errdefs.New(errdefs.InvalidArgument, "%s is not a directory", dir)
			}
			files, err := scaffold.Write(abs, tmpl, scaffold.Data{Project: name})
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Created project %s (template %s) in %s:\n", name, tmpl, dir)
			for _, f := range files {
				fmt.Fprintf(e.stdout, "  %s\n", f)
			}
			run := "cortex run " + dir
			if dir == "." {
				run = "cortex run ."
			}
			fmt.Fprintf(e.stdout, "Run it: %s\n", run)
			return nil
		},
	}
	cmd.Flags().StringVarP(&tmpl, "template", "t", "python", "the template: "+strings.Join(scaffold.Names(), ", "))
	cmd.Flags().StringVar(&name, "name", "", "the project's name (default: DIR's name)")
	return cmd
}
