package cli

import (
	"github.com/cortexrt/cortex/internal/api"
	"github.com/spf13/cobra"
)

func inspectCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect AGENT...",
		Short: "Show everything about agents as JSON: resolved manifest, limits, cgroup, walls, history",
		Args:  minArgs(1, "at least one AGENT"),
		RunE: func(c *cobra.Command, args []string) error {
			var out []api.Inspection
			err := e.eachAgent(c.Context(), args, func(cl *api.Client, ref api.AgentRef) error {
				in, err := cl.Inspect(c.Context(), ref)
				if err == nil {
					out = append(out, in)
				}
				return err
			})
			if len(out) > 0 {
				if werr := writeJSONTo(e.stdout, out); werr != nil {
					return werr
				}
			}
			return err
		},
	}
}
