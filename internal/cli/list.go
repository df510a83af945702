package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/spf13/cobra"
)

func listCmd(e *env) *cobra.Command {
	var all, asJSON bool
	cmd := &cobra.Command{
		Use:     "list [-a] [--json] [PROJECT]",
		Aliases: []string{"ls", "ps"},
		Short:   "List agents and their state",
		Args:    maxArgs(1, "at most one PROJECT"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := e.connect(c.Context(), false)
			if err != nil {
				return err
			}
			project := ""
			if len(args) == 1 {
				project = args[0]
			}
			agents, err := cl.Agents(c.Context(), project, all)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSONTo(e.stdout, agents)
			}
			printAgents(e.stdout, agents, time.Now())
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "include agents that have ended")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func writeJSONTo(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printAgents(w io.Writer, agents []api.AgentStatus, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "PROJECT\tAGENT\tSTATE\tPID\tCPU\tMEM\tRESTARTS\tUPTIME\tDESCRIPTION")
	for _, a := range agents {
		pid, cpu, mem, up := "-", "-", "-", "-"
		if a.State.Active() {
			if a.Pid > 0 {
				pid = strconv.Itoa(a.Pid)
			}
			cpu = fmt.Sprintf("%.1f%%", a.CPUPercent)
			mem = humanBytes(a.MemoryBytes) + " / " + humanBytes(a.MemoryLimit)
			if !a.StartedAt.IsZero() {
				up = humanDuration(now.Sub(a.StartedAt))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", a.Project, a.Agent, stateText(a, now), pid, cpu, mem, a.Restarts, up, oneLine(a.Description, 40))
	}
	tw.Flush()
}

// stateText is the STATE column: the state, the reason and exit code of
// an end, whether a restart is coming, and missing walls.
func stateText(a api.AgentStatus, now time.Time) string {
	s := string(a.State)
	var extra []string
	if a.Reason != "" {
		r := a.Reason
		if a.ExitCode != nil && (a.Reason == "Exited" || a.Reason == "Killed") {
			r += " " + strconv.Itoa(*a.ExitCode)
		}
		extra = append(extra, r)
	}
	if a.RestartPending {
		extra = append(extra, "restarting")
	}
	if len(a.Degraded) > 0 {
		extra = append(extra, "degraded")
	}
	if len(extra) > 0 {
		s += " (" + strings.Join(extra, ", ") + ")"
	}
	return s
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n-1] + "…"
	}
	return s
}

func humanBytes(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%dB", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	v := float64(b) / float64(div)
	suffix := []string{"KiB", "MiB", "GiB", "TiB"}[exp]
	if v >= 100 || v == float64(int64(v)) {
		return fmt.Sprintf("%.0f%s", v, suffix)
	}
	return fmt.Sprintf("%.1f%s", v, suffix)
}

func humanDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
