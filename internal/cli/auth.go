package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/spf13/cobra"
)

func authCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "API access: who you are, API keys, client certificates, the daemon's CA",
		Long: `API access (see docs/security.md). Roles: viewer (list, inspect, logs, events),
operator (+ run, kill, stop, suspend, resume, rm, bus publish), admin (+ keys,
certificates, the audit log), each limited to projects by name or prefix (ci-*).
Managing keys and certificates needs admin (root on the unix socket is admin).`,
	}
	cmd.AddCommand(whoamiCmd(e), caCmd(e), authKeyCmd(e), authCertCmd(e))
	return cmd
}

func whoamiCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "whoami [--json]",
		Short: "Show the identity and role bindings the daemon gives you",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := e.connect(c.Context(), false)
			if err != nil {
				return err
			}
			w, err := cl.Whoami(c.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSONTo(e.stdout, w)
			}
			cred := w.Auth
			if w.Credential != "" {
				cred += " " + w.Credential
			}
			fmt.Fprintf(e.stdout, "%s (%s), role %s\n", w.Identity, cred, w.Role)
			for _, b := range w.Bindings {
				fmt.Fprintf(e.stdout, "  %s\n", bindingText(b))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func bindingText(b api.AuthBinding) string {
	switch {
	case b.Owned:
		return b.Role + " on the projects you run"
	case len(b.Projects) == 0:
		return b.Role + " on every project"
	}
	return b.Role + " on " + strings.Join(b.Projects, ", ")
}

func caCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "ca",
		Short: "Print the daemon's CA certificate (PEM), for CORTEX_CA on clients",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := e.connect(c.Context(), false)
			if err != nil {
				return err
			}
			pemBytes, err := cl.CA(c.Context())
			if err != nil {
				return err
			}
			_, err = e.stdout.Write(pemBytes)
			return err
		},
	}
}

// parseExpiry reads --expires: a Go duration (36h) or days/weeks (30d,
// 2w); "" is never.
func parseExpiry(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	bad := errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "--expires %q is not a duration", s), "write e.g. 30d, 2w or 12h")
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.Atoi(n)
			if err != nil || v <= 0 {
				return "", bad
			}
			return (time.Duration(v) * unit).String(), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return "", bad
	}
	return d.String(), nil
}

// bindingFlags are --role and --project.
type bindingFlags struct {
	name, role, expires string
	projects            []string
}

func (b *bindingFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&b.name, "name", "", "name (lowercase letters, digits, '.', '_', '-')")
	cmd.Flags().StringVar(&b.role, "role", "", "viewer, operator or admin")
	cmd.Flags().StringArrayVar(&b.projects, "project", nil, "limit to a project: a name or a prefix ending in '*' (repeat for more; none: every project)")
	cmd.Flags().StringVar(&b.expires, "expires", "", "lifetime: 30d, 2w, 12h (keys: none means never; certificates: one year)")
}

func (b *bindingFlags) check() (string, error) {
	if b.name == "" || b.role == "" {
		return "", errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "--name and --role are required"), "e.g. --name ci --role operator --project 'ci-*'")
	}
	if err := config.CheckRole(b.role); err != nil {
		return "", errdefs.Wrap(errdefs.InvalidArgument, err)
	}
	for _, p := range b.projects {
		if err := config.CheckProjectPattern(p); err != nil {
			return "", errdefs.Wrap(errdefs.InvalidArgument, err)
		}
	}
	return parseExpiry(b.expires)
}

func scopeText(projects []string) string {
	if len(projects) == 0 {
		return "every project"
	}
	return strings.Join(projects, ",")
}

func authKeyCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "API keys (sent as Authorization: Bearer; CORTEX_API_KEY)"}
	var bf bindingFlags
	var asJSON bool
	create := &cobra.Command{
		Use:   "create --name NAME --role ROLE [--project PATTERN]... [--expires D] [--json]",
		Short: "Make an API key and print its secret, once",
		Long: `Make an API key. The secret is printed once, on stdout (with --json, as the
"secret" field); the daemon keeps only its HMAC. Use it as CORTEX_API_KEY.`,
		Args: exactArgs(0, "no arguments (flags only)"),
		RunE: func(c *cobra.Command, args []string) error {
			ttl, err := bf.check()
			if err != nil {
				return err
			}
			cl, err := e.connect(c.Context(), false)
			if err != nil {
				return err
			}
			k, err := cl.CreateKey(c.Context(), api.AuthKeyCreate{Name: bf.name, Role: bf.role, Projects: bf.projects, TTL: ttl})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSONTo(e.stdout, k)
			}
			exp := "never expires"
			if !k.ExpiresAt.IsZero() {
				exp = "expires " + k.ExpiresAt.Local().Format(time.RFC3339)
			}
			fmt.Fprintf(e.stderr, "API key %q (id %s): %s on %s, %s. The secret is shown only now:\n", k.Name, k.ID, k.Role, scopeText(k.Projects), exp)
			fmt.Fprintln(e.stdout, k.Secret)
			return nil
		},
	}
	bf.add(create)
	create.Flags().BoolVar(&asJSON, "json", false, "print JSON (with the secret)")
	var listJSON bool
	list := &cobra.Command{
		Use:   "list [--json]",
		Short: "List API keys (never their secrets)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := e.connect(c.Context(), false)
			if err != nil {
				return err
			}
			ks, err := cl.Keys(c.Context())
			if err != nil {
				return err
			}
			if listJSON {
				return writeJSONTo(e.stdout, ks)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tID\tROLE\tPROJECTS\tSTATE\tCREATED\tEXPIRES")
			for _, k := range ks {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.Name, k.ID, k.Role, scopeText(k.Projects), k.State, k.CreatedAt.Local().Format("2006-01-02 15:04"), dateOr(k.ExpiresAt, "never"))
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&listJSON, "json", false, "print JSON")
	revoke := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke an API key: every request with it gets 401 from now on",
		Args:  exactArgs(1, "NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := e.connect(c.Context(), false)
			if err != nil {
				return err
			}
			k, err := cl.RevokeKey(c.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "revoked %s (%s)\n", k.Name, k.ID)
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func dateOr(t time.Time, none string) string {
	if t.IsZero() {
		return none
	}
	return t.Local().Format("2006-01-02 15:04")
}

func authCertCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "cert", Short: "Client certificates for mTLS, signed by the daemon's CA"}
	var bf bindingFlags
	var out string
	var force, asJSON bool
	issue := &cobra.Command{
		Use:   "issue --name NAME --role ROLE [--project PATTERN]... [--expires D] [--out DIR] [--force]",
		Short: "Issue a client certificate: writes NAME.crt and NAME.key (0600) in --out",
		Long: `Issue a client certificate. The key pair is made here (ECDSA P-256) and only a
certificate request goes to the daemon, whose CA signs it; NAME.crt and NAME.key
(mode 0600) are written in --out (default: the current directory). Use them as
CORTEX_CERT and CORTEX_KEY. The identity is cert:NAME; revoke by serial or name.`,
		Args: exactArgs(0, "no arguments (flags only)"),
		RunE: func(c *cobra.Command, args []string) error {
			ttl, err := bf.check()
			if err != nil {
				return err
			}
			crt, keyPath := filepath.Join(out, bf.name+".crt"), filepath.Join(out, bf.name+".key")
			if !force {
				for _, p := range []string{crt, keyPath} {
					if _, err := os.Stat(p); err == nil {
						return errdefs.WithHint(errdefs.New(errdefs.AlreadyExists, "%s exists", p), "pass --force to replace it, or --out another directory")
					}
				}
			}
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return err
			}
			csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: bf.name}}, key)
			if err != nil {
				return err
			}
			cl, err := e.connect(c.Context(), false)
			if err != nil {
				return err
			}
			res, err := cl.IssueCert(c.Context(), api.AuthCertIssue{Name: bf.name, Role: bf.role, Projects: bf.projects, TTL: ttl,
				CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))})
			if err != nil {
				return err
			}
			kder, err := x509.MarshalPKCS8PrivateKey(key)
			if err != nil {
				return err
			}
			if err := writeFileMode(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
				return err
			}
			if err := writeFileMode(crt, []byte(res.Certificate), 0o644); err != nil {
				return err
			}
			if asJSON {
				return writeJSONTo(e.stdout, struct {
					api.AuthCert
					CertFile string `json:"cert_file"`
					KeyFile  string `json:"key_file"`
				}{res.AuthCert, crt, keyPath})
			}
			fmt.Fprintf(e.stdout, "%s %s (serial %s): %s on %s, expires %s\n", crt, keyPath, res.Serial, res.Role, scopeText(res.Projects), res.ExpiresAt.Local().Format(time.RFC3339))
			return nil
		},
	}
	bf.add(issue)
	issue.Flags().StringVar(&out, "out", ".", "directory for NAME.crt and NAME.key")
	issue.Flags().BoolVar(&force, "force", false, "replace existing files")
	issue.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var listJSON bool
	list := &cobra.Command{
		Use:   "list [--json]",
		Short: "List the client certificates issued",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := e.connect(c.Context(), false)
			if err != nil {
				return err
			}
			cs, err := cl.Certs(c.Context())
			if err != nil {
				return err
			}
			if listJSON {
				return writeJSONTo(e.stdout, cs)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSERIAL\tROLE\tPROJECTS\tSTATE\tISSUED\tEXPIRES")
			for _, x := range cs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.Name, x.Serial, x.Role, scopeText(x.Projects), x.State, x.IssuedAt.Local().Format("2006-01-02 15:04"), dateOr(x.ExpiresAt, "-"))
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&listJSON, "json", false, "print JSON")
	revoke := &cobra.Command{
		Use:   "revoke SERIAL|NAME",
		Short: "Revoke a client certificate by serial (or every live one of a name)",
		Args:  exactArgs(1, "SERIAL or NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := e.connect(c.Context(), false)
			if err != nil {
				return err
			}
			cs, err := cl.RevokeCert(c.Context(), args[0])
			if err != nil {
				return err
			}
			for _, x := range cs {
				fmt.Fprintf(e.stdout, "revoked %s (serial %s)\n", x.Name, x.Serial)
			}
			return nil
		},
	}
	cmd.AddCommand(issue, list, revoke)
	return cmd
}

func writeFileMode(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
