package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/audit"
	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/spf13/cobra"
)

func auditCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "The daemon's tamper-evident audit log: list, verify, checkpoint",
		Long: `Every API request (who, with which role, what, on which project, the outcome) and
every lifecycle event the daemon causes is in the audit log under
var/lib/cortex/audit, a Merkle tree with signed checkpoints (see docs/security.md).
Listing and checkpoints need admin.`,
	}
	cmd.AddCommand(auditListCmd(e), auditVerifyCmd(e), auditCheckpointCmd(e))
	return cmd
}

func auditListCmd(e *env) *cobra.Command {
	var asJSON bool
	var since, until, identity, project string
	var kinds []string
	var limit int
	cmd := &cobra.Command{
		Use:   "list [--json] [--since D|TIME] [--until TIME] [--identity ID] [--project P] [--kind K]... [--limit N]",
		Short: "List audit entries, oldest first (the newest --limit)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			q := url.Values{}
			now := time.Now()
			for _, f := range []struct{ flag, val, key string }{{"since", since, "since"}, {"until", until, "until"}} {
				if f.val == "" {
					continue
				}
				t, err := parseSince(f.val, now)
				if err != nil {
					return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "--%s %q is neither a duration nor a time", f.flag, f.val), "write e.g. 1h or 2026-11-22T10:00:00Z")
				}
				q.Set(f.key, t.UTC().Format(time.RFC3339Nano))
			}
			if identity != "" {
				q.Set("identity", identity)
			}
			if project != "" {
				q.Set("project", project)
			}
			if len(kinds) > 0 {
				q.Set("kind", strings.Join(kinds, ","))
			}
			q.Set("limit", strconv.Itoa(limit))
			cl, err := e.connect(c.Context(), false)
			if err != nil {
				return err
			}
			es, err := cl.Audit(c.Context(), q)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSONTo(e.stdout, es)
			}
			printAudit(e.stdout, es)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (the entries as the log stores them)")
	cmd.Flags().StringVar(&since, "since", "", "entries newer than a duration ago (1h) or a time (RFC 3339)")
	cmd.Flags().StringVar(&until, "until", "", "entries older than a duration ago or a time")
	cmd.Flags().StringVar(&identity, "identity", "", "API entries of one identity: uid:N, key:NAME, cert:NAME, anonymous")
	cmd.Flags().StringVar(&project, "project", "", "entries about one project")
	cmd.Flags().StringArrayVar(&kinds, "kind", nil, "api, event, notice, checkpoint or segment (default: api, event, notice)")
	cmd.Flags().IntVar(&limit, "limit", 200, "show the newest N entries (0: all)")
	return cmd
}

func printAudit(w io.Writer, es []api.AuditEntry) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tTIME\tWHO\tWHAT\tTARGET\tOUTCOME")
	for _, e := range es {
		who, what, target, outcome := "cortexd", string(e.Kind), "", ""
		switch {
		case e.API != nil:
			a := e.API
			who = a.Identity
			if a.Role != "" {
				who += " (" + a.Role + ")"
			}
			what = a.Method + " " + a.Path
			target = a.Project
			if a.Agent != "" {
				target += "/" + a.Agent
			}
			outcome = a.Outcome
			if a.Status != 0 {
				outcome += " " + strconv.Itoa(a.Status)
			}
			if a.Count > 1 {
				outcome += fmt.Sprintf(" x%d", a.Count)
			}
			if a.Phase == "begin" {
				outcome = "begin"
			}
			if a.Remote != "" && !strings.HasPrefix(a.Remote, "unix") {
				who += " " + a.Remote
			}
		case e.Event != nil:
			ev := e.Event
			what = ev.Type
			if ev.Count > 1 {
				what += fmt.Sprintf(" x%d", ev.Count)
			}
			target = ev.Project
			if ev.Agent != "" {
				target += "/" + ev.Agent
			}
			outcome = oneLine(detailText(ev.Detail), 60)
		case e.Notice != "":
			outcome = oneLine(e.Notice, 80)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Index, e.Time.Local().Format("2006-01-02 15:04:05"), who, what, orDash(target), orDash(outcome))
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// detailText flattens an event detail to key=value pairs.
func detailText(raw json.RawMessage) string {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return string(raw)
	}
	var parts []string
	for _, k := range []string{"state", "reason", "exit_code", "kind", "protocol", "host", "addr", "op", "channel", "alias", "message"} {
		if v, ok := m[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	return strings.Join(parts, " ")
}

func auditVerifyCmd(e *env) *cobra.Command {
	var checkpoints []string
	var key, dir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify [--checkpoint FILE]... [--key KEY|FILE] [--dir DIR] [--json]",
		Short: "Verify the audit log; exit 0 when intact, 1 naming the first bad entry",
		Long: `Verify the audit log: every segment, every entry's encoding and recorded tree
head, every signed checkpoint. With --checkpoint (a file cortex audit checkpoint
wrote earlier, kept elsewhere), the log must still hold what it signed: this
detects the removal of the newest entries. --key is the verifier key to check
signatures with (default the log's key.pub; keep it with your checkpoints).

The log is read from the local daemon's directory (var/lib/cortex/audit under
CORTEX_ROOT; root only), or --dir, or, for a remote daemon, fetched over the API
(admin) and verified here.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			var opts audit.VerifyOptions
			for _, f := range checkpoints {
				b, err := os.ReadFile(f)
				if err != nil {
					return errdefs.Wrap(errdefs.InvalidArgument, err)
				}
				opts.Kept = append(opts.Kept, b)
			}
			if key != "" {
				opts.Key = key
				if b, err := os.ReadFile(key); err == nil {
					opts.Key = strings.TrimSpace(string(b))
				}
			}
			src, where, err := e.auditSource(c.Context(), dir)
			if err != nil {
				return err
			}
			res, err := audit.Verify(src, opts)
			var p *audit.Problem
			if errors.As(err, &p) {
				if asJSON {
					_ = writeJSONTo(e.stdout, map[string]any{"intact": false, "file": p.File, "line": p.Line, "entry": entryOf(p), "problem": p.Msg})
				}
				fmt.Fprintf(e.stderr, "audit log %s does not verify: %s\n", where, p.Error())
				return exitError{1}
			}
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSONTo(e.stdout, map[string]any{"intact": true, "entries": res.Entries, "segments": res.Segments, "checkpoints": res.Checkpoints,
					"root": base64.StdEncoding.EncodeToString(res.Root), "unsigned": res.Unsigned, "kept": len(res.Kept)})
			}
			fmt.Fprintf(e.stdout, "audit log %s intact: %d entries in %d segment(s), %d signed checkpoint(s), head %s\n",
				where, res.Entries, res.Segments, res.Checkpoints, base64.StdEncoding.EncodeToString(res.Root))
			if res.Latest != nil {
				fmt.Fprintf(e.stdout, "newest signed checkpoint covers %d entries; %d newer entries await the next\n", res.Latest.Size, res.Unsigned)
			}
			for i, k := range res.Kept {
				fmt.Fprintf(e.stdout, "kept checkpoint %d (%d entries): matches\n", i+1, k.Size)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&checkpoints, "checkpoint", nil, "a signed checkpoint kept earlier (repeatable)")
	cmd.Flags().StringVar(&key, "key", "", "the verifier key (NAME+HASH+KEY) or a file holding it")
	cmd.Flags().StringVar(&dir, "dir", "", "verify this audit directory (a copy, say)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func entryOf(p *audit.Problem) any {
	if !p.HasIndex {
		return nil
	}
	return p.Index
}

// auditSource is where verify reads the log: --dir, the local daemon's
// directory, or a remote daemon's files over the API.
func (e *env) auditSource(ctx context.Context, dir string) (audit.Source, string, error) {
	if dir != "" {
		return audit.Dir(dir), dir, nil
	}
	ep, err := e.cfg.Endpoint()
	if err != nil {
		return nil, "", err
	}
	if !ep.Remote() {
		d := filepath.Join(config.NewPaths(e.cfg.Root).LibDir, "audit")
		if _, err := os.ReadDir(d); err != nil {
			if errors.Is(err, os.ErrPermission) {
				return nil, "", errdefs.WithHint(errdefs.Wrap(errdefs.PermissionDenied, err), "run it as root, or point --dir at a copy")
			}
			return nil, "", errdefs.Wrap(errdefs.NotFound, err)
		}
		return audit.Dir(d), d, nil
	}
	cl, err := e.connect(ctx, false)
	if err != nil {
		return nil, "", err
	}
	files, err := cl.AuditFiles(ctx)
	if err != nil {
		return nil, "", err
	}
	rs := &remoteAudit{ctx: ctx, cl: cl, files: map[string][]byte{}}
	for _, f := range files {
		if f.Name != audit.VerifierFile {
			rs.names = append(rs.names, f.Name)
		}
	}
	return rs, ep.URL, nil
}

// remoteAudit reads a remote daemon's audit files over the API.
type remoteAudit struct {
	ctx   context.Context
	cl    *api.Client
	names []string
	files map[string][]byte
}

func (r *remoteAudit) Segments() ([]string, error) { return r.names, nil }

func (r *remoteAudit) Read(name string) ([]byte, error) {
	if name == audit.SignerFile {
		return nil, os.ErrNotExist
	}
	b, err := r.cl.AuditFile(r.ctx, name)
	if errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("%s: %w", name, os.ErrNotExist)
	}
	return b, err
}

func auditCheckpointCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "checkpoint",
		Short: "Print a signed checkpoint of the audit log's head; keep it elsewhere",
		Long: `Print a signed checkpoint (C2SP tlog-checkpoint in a signed note) of the audit
log as it is now. Keep it off this host, with the verifier key
(var/lib/cortex/audit/key.pub): cortex audit verify --checkpoint FILE later shows
whether any entry it covers was changed or removed, the newest included.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := e.connect(c.Context(), false)
			if err != nil {
				return err
			}
			cp, err := cl.AuditCheckpoint(c.Context())
			if err != nil {
				return err
			}
			_, err = e.stdout.Write(cp)
			return err
		},
	}
}
