package cli

import (
	"github.com/cortexrt/cortex/internal/api"
	"github.com/spf13/cobra"
)

func rmCmd(e *env) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm [-f] PROJECT...",
		Short: "Remove stopped projects: their state, logs and unpacked bundle",
		Args:  minArgs(1, "at least one PROJECT"),
		RunE: func(c *cobra.Command, args []string) error {
			return e.eachProject(c.Context(), args, func(cl *api.Client, p string) error { return cl.Remove(c.Context(), p, force) })
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "stop running agents first")
	return cmd
}
