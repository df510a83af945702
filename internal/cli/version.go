package cli

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/spf13/cobra"
)

// Version is the CLI's version, set with -ldflags.
var Version = "0.1.0-dev"

type versionOut struct {
	Client struct {
		Version string `json:"version"`
		Go      string `json:"go"`
		OSArch  string `json:"os_arch"`
	} `json:"client"`
	Server *api.VersionInfo `json:"server,omitempty"`
	Error  string           `json:"server_error,omitempty"`
}

func versionCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version [--json]",
		Short: "Show the CLI's and the daemon's versions",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			var out versionOut
			out.Client.Version, out.Client.Go, out.Client.OSArch = Version, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH
			ctx, cancel := context.WithTimeout(c.Context(), 3*time.Second)
			defer cancel()
			cl, err := e.connect(ctx, false)
			if err == nil {
				var v api.VersionInfo
				if v, err = cl.Version(ctx); err == nil {
					out.Server = &v
				}
			}
			if err != nil {
				out.Error = err.Error()
			}
			if asJSON {
				return writeJSONTo(e.stdout, out)
			}
			fmt.Fprintf(e.stdout, "Client: %s (%s, %s)\n", Version, out.Client.Go, out.Client.OSArch)
			if out.Server == nil {
				fmt.Fprintf(e.stdout, "Server: not reachable (%s)\n", out.Error)
				return nil
			}
			s := out.Server
			fmt.Fprintf(e.stdout, "Server: %s (api %s, %s, pid %d, root %s, cgroup %s)\n", s.Version, s.API, s.GoVersion, s.Pid, s.Root, s.Cgroup)
			for _, w := range s.Walls {
				mark := "up"
				if !w.Up {
					mark = "MISSING"
				}
				fmt.Fprintf(e.stdout, "  %-12s %-7s %s\n", w.Name, mark, w.Detail)
			}
			if len(s.Degraded) > 0 {
				fmt.Fprintf(e.stdout, "  degraded mode: running without %v\n", s.Degraded)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
