package cli

import (
	"context"
	"fmt"
	"io"
	"path"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/spf13/cobra"
)

// The CLI's own checks: whether a daemon answers and runs this version.
var cliChecks = []api.CheckInfo{
	{ID: "daemon.reachable", Title: "a daemon answers on the API socket", DependsOn: []string{}, Critical: true, Source: "cli"},
	{ID: "daemon.version", Title: "the daemon runs the CLI's version", DependsOn: []string{"daemon.reachable"}, Source: "cli"},
}

func cliCheckIDs() []string {
	ids := make([]string, len(cliChecks))
	for i, c := range cliChecks {
		ids[i] = c.ID
	}
	return ids
}

// selected reports whether the CLI check id is selected by --check and
// not ignored; ignored names the pattern that ignores it.
func selected(id string, only, ignore []string) (run bool, ignored string) {
	run = len(only) == 0
	for _, p := range only {
		if ok, _ := path.Match(p, id); ok {
			run = true
		}
	}
	// daemon.version needs daemon.reachable.
	if id == "daemon.reachable" && !run {
		for _, p := range only {
			if ok, _ := path.Match(p, "daemon.version"); ok {
				run = true
			}
		}
	}
	for _, p := range ignore {
		if ok, _ := path.Match(p, id); ok {
			return run, p
		}
	}
	return run, ""
}

// cliResults runs the CLI's checks.
func (r *opsRunner) cliResults(only, ignore []string) []api.Check {
	var out []api.Check
	mk := func(info api.CheckInfo, st api.CheckStatus, ev string, fix *api.Fix) api.Check {
		return api.Check{ID: info.ID, Title: info.Title, Status: st, Evidence: ev, Fix: fix, DependsOn: info.DependsOn, Critical: info.Critical, Source: "cli"}
	}
	for _, info := range cliChecks {
		run, ign := selected(info.ID, only, ignore)
		if !run {
			continue
		}
		if ign != "" {
			out = append(out, mk(info, api.CheckSkip, "ignored (--ignore "+ign+")", nil))
			continue
		}
		switch info.ID {
		case "daemon.reachable":
			if r.offline() {
				out = append(out, mk(info, api.CheckSkip, fmt.Sprintf("no daemon answers (%v); cortex starts one when needed; the daemon's checks ran through cortexd ops", r.daemonErr), nil))
			} else {
				out = append(out, mk(info, api.CheckOK, fmt.Sprintf("cortexd %s (pid %d) answers on %s", r.version.Version, r.version.Pid, r.e.localSocket()), nil))
			}
		case "daemon.version":
			switch {
			case r.offline():
				out = append(out, mk(info, api.CheckSkip, "no daemon answers", nil))
			case r.version.Version != Version:
				out = append(out, mk(info, api.CheckWarn, fmt.Sprintf("the CLI is %s, the daemon %s", Version, r.version.Version),
					&api.Fix{Kind: api.FixManual, Description: "install matching versions (cortex-ops update installs both)", Command: "cortex-ops update --status"}))
			default:
				out = append(out, mk(info, api.CheckOK, "both "+Version, nil))
			}
		}
	}
	return out
}

func doctorCmd(e *env) *cobra.Command {
	var asJSON, listOnly, explain bool
	var only, ignore []string
	cmd := &cobra.Command{
		Use:   "doctor [--json] [--check ID]... [--ignore ID]... [--list] [--explain]",
		Short: "Check the host, the daemon and its state; exit 0 all ok, 1 warnings, 2 failures",
		Long: `doctor runs every health check in parallel, each with a timeout, and prints what it found
and how to fix it. The checks run in the daemon (or, when none answers, in cortexd ops on this
host); check plugins in etc/cortex/plugins/checks run too. IDs are stable: --check and --ignore
take them (or patterns like 'kernel.*'), one check at a time. --json prints the report of
docs/ops.md (schema cortex.doctor/v1). --explain sends that JSON to the LLM alias
ops.explain_alias and prints its recommendations.
Exit codes: 0 every check ok or skipped, 1 warnings only, 2 any failure.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			r, err := e.opsRunner(ctx)
			if err != nil {
				return err
			}
			if listOnly {
				infos, err := r.list(ctx)
				if err != nil {
					return err
				}
				infos = append(append([]api.CheckInfo{}, cliChecks...), infos...)
				if asJSON {
					return writeJSONTo(e.stdout, infos)
				}
				tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tAUTO FIX\tCRITICAL\tDEPENDS ON\tTITLE")
				for _, i := range infos {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", i.ID, yesNo(i.AutoFix), yesNo(i.Critical), dash(strings.Join(i.DependsOn, ",")), i.Title)
				}
				return tw.Flush()
			}
			rep, err := r.checks(ctx, api.ChecksQuery{Checks: only, Ignore: ignore, Also: cliCheckIDs()})
			if err != nil {
				return err
			}
			rep.Checks = append(r.cliResults(only, ignore), rep.Checks...)
			rep.Version = Version
			rep.Tally()
			var explainErr error
			if explain {
				explainErr = e.explain(ctx, r, &rep)
			}
			if asJSON {
				if err := writeJSONTo(e.stdout, rep); err != nil {
					return err
				}
			} else {
				printReport(e.stdout, rep, e.tty(e.stdout))
			}
			if explainErr != nil {
				return explainErr
			}
			if rep.ExitCode != 0 {
				return exitError{rep.ExitCode}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print the report as JSON (schema cortex.doctor/v1)")
	f.StringArrayVar(&only, "check", nil, "run only this check (an id or pattern; repeatable; its dependencies run too)")
	f.StringArrayVar(&ignore, "ignore", nil, "report this check as skipped instead of running it (an id or pattern; repeatable)")
	f.BoolVar(&listOnly, "list", false, "list the checks")
	f.BoolVar(&explain, "explain", false, "send the report (JSON only, no secrets) to the LLM alias ops.explain_alias and print its recommendations")
	return cmd
}

// explain asks the daemon's LLM gateway to read the report.
func (e *env) explain(ctx context.Context, r *opsRunner, rep *api.DoctorReport) error {
	if r.offline() {
		return fmt.Errorf("--explain needs a running cortexd (its LLM gateway holds the provider keys)")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	ex, err := r.client.OpsExplain(ctx, *rep)
	if err != nil {
		return err
	}
	rep.Explain = &ex
	return nil
}

func statusMark(s api.CheckStatus) string {
	switch s {
	case api.CheckOK:
		return "ok"
	case api.CheckWarn:
		return "WARN"
	case api.CheckFail:
		return "FAIL"
	}
	return "skip"
}

func printReport(w io.Writer, rep api.DoctorReport, tty bool) {
	where := "the daemon"
	if rep.Runner == "offline" {
		where = "cortexd ops (no daemon answers)"
	}
	fmt.Fprintf(w, "Cortex doctor: %d checks on %s, run by %s\n\n", len(rep.Checks), rep.Root, where)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range rep.Checks {
		ev := c.Evidence
		if !tty {
			ev = strings.ReplaceAll(ev, "\n", " ")
		}
		fmt.Fprintf(tw, "[%s]\t%s\t%s\n", statusMark(c.Status), c.ID, ev)
		if c.Fix != nil && (c.Status == api.CheckWarn || c.Status == api.CheckFail) {
			fix := "fix (" + string(c.Fix.Kind) + "): " + c.Fix.Description
			if c.Fix.Kind == api.FixAuto {
				fix += " -> cortex-ops repair --check " + c.ID
			} else if c.Fix.Command != "" {
				fix += " -> " + c.Fix.Command
			}
			fmt.Fprintf(tw, "\t\t%s\n", fix)
		}
	}
	_ = tw.Flush()
	s := rep.Summary
	fmt.Fprintf(w, "\n%d ok, %d warning(s), %d failure(s), %d skipped (exit %d)\n", s.OK, s.Warn, s.Fail, s.Skip, rep.ExitCode)
	if rep.Explain != nil {
		fmt.Fprintf(w, "\nRecommendations (LLM alias %s, model %s; a reading of the report above, check before acting):\n%s\n", rep.Explain.Alias, dash(rep.Explain.Model), strings.TrimSpace(rep.Explain.Text))
	}
}
