package cli

import (
	"fmt"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/spf13/cobra"
)

func suspendCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "suspend AGENT...",
		Short: "Freeze agents (their state stays in memory)",
		Args:  minArgs(1, "at least one AGENT"),
		RunE: func(c *cobra.Command, args []string) error {
			return e.eachAgent(c.Context(), args, func(cl *api.Client, ref api.AgentRef) error {
				if err := cl.Suspend(c.Context(), ref); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "%s/%s\n", ref.Project, ref.Agent)
				return nil
			})
		},
	}
}
