package cli

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/logs"
	"github.com/spf13/cobra"
)

func logsCmd(e *env) *cobra.Command {
	var follow, asJSON bool
	var tail int
	var since, project string
	cmd := &cobra.Command{
		Use:   "logs [-f] [--tail N] [--since 5m] [--json] AGENT | --project PROJECT",
		Short: "Show an agent's output (or a whole project's)",
		Long: `Show the records an agent wrote, oldest first. AGENT is project/agent, or agent when
unambiguous; --project shows every agent of a project interleaved. --since takes a duration
(5m, 2h) or an RFC 3339 time. --json prints one record per line as JSON.`,
		Args: maxArgs(1, "one AGENT"),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			cl, err := e.connect(ctx, false)
			if err != nil {
				return err
			}
			q := api.LogsQuery{Tail: tail, Follow: follow}
			switch {
			case project != "" && len(args) == 0:
				q.Project = project
			case len(args) == 1 && project == "":
				ref, err := cl.Resolve(ctx, args[0])
				if err != nil {
					return err
				}
				q.Project, q.Agent = ref.Project, ref.Agent
			default:
				return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "name one AGENT, or --project PROJECT"), "cortex logs --help")
			}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				q.Since = t
			}
			color := e.tty(e.stdout)
			width := 0
			if q.Agent == "" {
				if agents, err := cl.Agents(ctx, q.Project, true); err == nil {
					for _, a := range agents {
						width = max(width, len(a.Agent))
					}
				}
			}
			enc := json.NewEncoder(e.stdout)
			return cl.Logs(ctx, q, func(rec logs.Record) error {
				if asJSON {
					return enc.Encode(rec)
				}
				_, err := fmt.Fprintln(e.stdout, logs.FormatText(rec, color, width))
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming new records")
	cmd.Flags().IntVarP(&tail, "tail", "n", 0, "show only the last N records (0 = all)")
	cmd.Flags().StringVar(&since, "since", "", "show records newer than a duration ago (5m) or a time (RFC 3339)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print records as JSON lines")
	cmd.Flags().StringVarP(&project, "project", "p", "", "show every agent of PROJECT")
	return cmd
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			d = -d
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "--since %q is neither a duration nor a time", s), "write e.g. --since 5m or --since 2026-11-22T10:00:00Z")
}
