package cli

import (
	"fmt"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/spf13/cobra"
)

func killCmd(e *env) *cobra.Command {
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "kill [--grace 10s] AGENT...",
		Short: "Stop agents: SIGTERM, then SIGKILL after the grace period",
		Long:  "Stop agents. Each gets SIGTERM, and SIGKILL if it is still running after --grace. A killed\nagent ends stopped (reason Killed) and is not restarted. AGENT is project/agent, or agent when unambiguous.",
		Args:  minArgs(1, "at least one AGENT"),
		RunE: func(c *cobra.Command, args []string) error {
			return e.eachAgent(c.Context(), args, func(cl *api.Client, ref api.AgentRef) error {
				if err := cl.Kill(c.Context(), ref, grace); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "%s/%s\n", ref.Project, ref.Agent)
				return nil
			})
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", 10*time.Second, "time between SIGTERM and SIGKILL")
	return cmd
}
