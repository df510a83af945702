package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func stopCmd(e *env) *cobra.Command {
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "stop [--grace 10s] PROJECT...",
		Short: "Stop every agent of projects",
		Args:  minArgs(1, "at least one PROJECT"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := e.connect(c.Context(), false)
			if err != nil {
				return err
			}
			for _, p := range args {
				if err := cl.Stop(c.Context(), p, grace); err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, p)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", 10*time.Second, "time between SIGTERM and SIGKILL")
	return cmd
}
