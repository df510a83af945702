package cli

import (
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/spf13/cobra"
)

func stopCmd(e *env) *cobra.Command {
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "stop [--grace 10s] PROJECT...",
		Short: "Stop every agent of projects",
		Args:  minArgs(1, "at least one PROJECT"),
		RunE: func(c *cobra.Command, args []string) error {
			return e.eachProject(c.Context(), args, func(cl *api.Client, p string) error { return cl.Stop(c.Context(), p, grace) })
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", 10*time.Second, "time between SIGTERM and SIGKILL")
	return cmd
}
