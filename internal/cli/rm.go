package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func rmCmd(e *env) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm [-f] PROJECT...",
		Short: "Remove stopped projects: their state, logs and unpacked bundle",
		Args:  minArgs(1, "at least one PROJECT"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := e.connect(c.Context(), false)
			if err != nil {
				return err
			}
			for _, p := range args {
				if err := cl.Remove(c.Context(), p, force); err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, p)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "stop running agents first")
	return cmd
}
