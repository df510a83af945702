package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func repairCmd(e *env) *cobra.Command {
	var asJSON, dryRun, yes, list, force bool
	var only, ignore []string
	var undo string
	cmd := &cobra.Command{
		Use:   "repair [--dry-run] [--yes] [--check ID]... [--ignore ID]... [--json] | --undo TXID | --list",
		Short: "Apply doctor's automatic fixes, each an undoable transaction",
		Long: `repair runs the checks and applies the automatic fix of each that is not ok. Every fix is a
transaction: what changed and what was there before (modes, owners, file contents, directories
moved aside) is kept under var/lib/cortex/ops/, recorded on the daemon's event stream, and
--undo TXID puts it back exactly (refused when the target changed since, unless --force).
Manual fixes are printed, never run. --dry-run shows what would change. Without a terminal to
confirm on and without --yes, nothing is changed.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			r, err := e.opsRunner(ctx)
			if err != nil {
				return err
			}
			switch {
			case undo != "":
				t, err := r.undo(ctx, undo, force)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSONTo(e.stdout, t)
				}
				fmt.Fprintf(e.stdout, "Undone %s (%s):\n", t.ID, t.Check)
				for i := len(t.Changes) - 1; i >= 0; i-- {
					if t.Changes[i].Undone {
						fmt.Fprintf(e.stdout, "  reverted: %s\n", t.Changes[i].Description)
					}
				}
				return nil
			case list:
				ts, err := r.transactions(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSONTo(e.stdout, ts)
				}
				for _, t := range ts {
					fmt.Fprintf(e.stdout, "%s  %-10s %-18s %s (%d changes)\n", t.ID, t.State, t.Check, t.Description, len(t.Changes))
				}
				return nil
			}
			req := api.RepairRequest{Checks: only, Ignore: ignore, DryRun: true, Also: cliCheckIDs()}
			if dryRun || !yes {
				plan, err := r.repair(ctx, req)
				if err != nil {
					return err
				}
				if dryRun || len(plan.Transactions) == 0 {
					return e.printRepair(plan, asJSON)
				}
				if !e.canConfirm() {
					_ = e.printRepair(plan, asJSON)
					return errdefs.WithHint(errdefs.New(errdefs.FailedPrecondition, "nothing was changed: no terminal to confirm on"),
						"run cortex-ops repair --yes to apply the fixes above (or --dry-run to only show them)")
				}
				_ = e.printRepair(plan, false)
				if !e.confirm(fmt.Sprintf("Apply %d fix(es)? [y/N] ", len(plan.Transactions))) {
					fmt.Fprintln(e.stderr, "Nothing was changed.")
					return nil
				}
				// Only what was shown: the checks that planned a fix.
				req.Checks = nil
				for _, t := range plan.Transactions {
					req.Checks = append(req.Checks, t.Check)
				}
			}
			req.DryRun = false
			res, err := r.repair(ctx, req)
			if err != nil {
				return err
			}
			if err := e.printRepair(res, asJSON); err != nil {
				return err
			}
			if len(res.Failed) > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print JSON: the transactions (each with its id), manual fixes and failures")
	f.BoolVar(&dryRun, "dry-run", false, "show what would change; change nothing")
	f.BoolVarP(&yes, "yes", "y", false, "apply without asking")
	f.StringArrayVar(&only, "check", nil, "fix only what this check finds (an id or pattern; repeatable)")
	f.StringArrayVar(&ignore, "ignore", nil, "leave this check alone (an id or pattern; repeatable)")
	f.StringVar(&undo, "undo", "", "revert transaction TXID")
	f.BoolVar(&force, "force", false, "with --undo: revert even what changed since the repair")
	f.BoolVar(&list, "list", false, "list the repair transactions")
	return cmd
}

// canConfirm: both stdin and stderr are terminals.
func (e *env) canConfirm() bool {
	f, ok := e.stdin.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) && e.tty(e.stderr)
}

func (e *env) confirm(prompt string) bool {
	fmt.Fprint(e.stderr, prompt)
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		return false
	}
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes"
}

func (e *env) printRepair(res api.RepairResponse, asJSON bool) error {
	if asJSON {
		return writeJSONTo(e.stdout, res)
	}
	w := e.stdout
	verb := "Repaired"
	if res.DryRun {
		verb = "Would repair"
	}
	if len(res.Transactions) == 0 && len(res.Failed) == 0 {
		fmt.Fprintln(w, "Nothing to repair automatically.")
	}
	for _, t := range res.Transactions {
		id := t.ID
		if res.DryRun {
			id = "dry run"
		}
		fmt.Fprintf(w, "%s %s (%s): %s\n", verb, t.Check, id, t.Description)
		for _, c := range t.Changes {
			fmt.Fprintf(w, "  %s\n", c.Description)
		}
		if !res.DryRun {
			fmt.Fprintf(w, "  undo: cortex-ops repair --undo %s\n", t.ID)
		}
	}
	for _, f := range res.Failed {
		fmt.Fprintf(w, "FAILED %s: %s\n", f.Check, f.Error)
		if f.TxnID != "" {
			fmt.Fprintf(w, "  (transaction %s aborted; what it had applied was reverted)\n", f.TxnID)
		}
	}
	if len(res.Manual) > 0 {
		fmt.Fprintln(w, "\nManual fixes (not run):")
		for _, c := range res.Manual {
			fmt.Fprintf(w, "  %s [%s]: %s\n", c.ID, c.Status, c.Fix.Description)
			if c.Fix.Command != "" {
				fmt.Fprintf(w, "    %s\n", c.Fix.Command)
			}
		}
	}
	return nil
}
