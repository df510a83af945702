package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/registry"
)

type registryFlags struct {
	dir, addr         string
	hostnames         []string
	cert, key         string
	insecure, systemd bool
	user              string
	passwordStdin     bool
}

func (f *registryFlags) options(e *env) registry.Options {
	dir := f.dir
	if dir == "" {
		dir = filepath.Join(config.NewPaths(e.cfg.Root).LibDir, "registry")
	}
	return registry.Options{Dir: dir, Addr: f.addr, Hostnames: f.hostnames, CertFile: f.cert, KeyFile: f.key, Insecure: f.insecure}
}

// registryCmd is cortex-ops registry: a site's private bundle registry.
func registryCmd(e *env) *cobra.Command {
	var f registryFlags
	cmd := &cobra.Command{
		Use:   "registry [--addr :5000] [--dir DIR] [--user NAME [--password-stdin]] [--systemd]",
		Short: "Run a private OCI registry for bundles (TLS + htpasswd)",
		Long: `Run the site's private registry: the CNCF distribution registry (Debian's docker-registry)
as a child process in the foreground, or, with --systemd, install a unit that runs it.

State lives in --dir (default var/lib/cortex/registry under the Cortex root): config.yml,
htpasswd (bcrypt), tls/ and storage/. Unless --tls-cert/--tls-key are given, a CA and a
server certificate for --hostname (default: this host's name, localhost, 127.0.0.1, ::1)
are generated; clients trust the CA by copying tls/ca.crt to
/etc/docker/certs.d/HOST:PORT/ca.crt. --user NAME adds (or changes) a user, with the
password read from stdin (--password-stdin) or generated and printed once. --insecure
serves plain HTTP without authentication and is allowed on a loopback address only.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			return e.registry(c.Context(), &f, c.InOrStdin())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dir, "dir", "", "state directory (default <root>/var/lib/cortex/registry)")
	fl.StringVar(&f.addr, "addr", ":5000", "host:port to listen on")
	fl.StringSliceVar(&f.hostnames, "hostname", nil, "name or IP clients use (repeatable; for the generated certificate)")
	fl.StringVar(&f.cert, "tls-cert", "", "your own TLS certificate (PEM) instead of a generated one")
	fl.StringVar(&f.key, "tls-key", "", "the key of --tls-cert")
	fl.BoolVar(&f.insecure, "insecure", false, "plain HTTP, no authentication (loopback addresses only)")
	fl.BoolVar(&f.systemd, "systemd", false, "install a systemd unit (cortex-registry.service) instead of running in the foreground")
	fl.StringVar(&f.user, "user", "", "add or update this htpasswd user")
	fl.BoolVar(&f.passwordStdin, "password-stdin", false, "read --user's password from stdin")
	return cmd
}

func (e *env) registry(ctx context.Context, f *registryFlags, stdin io.Reader) error {
	if f.passwordStdin && f.user == "" {
		return errdefs.New(errdefs.InvalidArgument, "--password-stdin needs --user")
	}
	site, err := registry.Prepare(f.options(e))
	if err != nil {
		return err
	}
	if f.user != "" {
		if err := setRegistryUser(e, site, f.user, f.passwordStdin, stdin); err != nil {
			return err
		}
	}
	binary, err := registry.FindBinary()
	if err != nil {
		return err
	}
	if f.systemd {
		unit := filepath.Join(config.NewPaths(e.cfg.Root).Root, "etc", "systemd", "system", "cortex-registry.service")
		if err := os.MkdirAll(filepath.Dir(unit), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(unit, []byte(site.SystemdUnit(binary)), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "wrote %s\nstart it with: systemctl daemon-reload && systemctl enable --now cortex-registry\n", unit)
		e.describeSite(site)
		return nil
	}
	if users, _ := site.Users(); !site.Insecure && len(users) == 0 {
		fmt.Fprintf(e.stderr, "warning: the registry has no users yet; add one with cortex-ops registry --user NAME\n")
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	p, err := site.Start(ctx, binary, e.stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "registry ready on %s://%s (pid %d, storage %s)\n", site.Scheme(), site.Addr, p.Pid(), site.StorageDir)
	e.describeSite(site)
	select {
	case <-ctx.Done():
		p.Stop(10 * time.Second)
		return nil
	case <-p.Done():
		return errdefs.New(errdefs.Unavailable, "the registry exited: %v", p.Err())
	}
}

func (e *env) describeSite(site *registry.Site) {
	if site.CAPath != "" {
		fmt.Fprintf(e.stdout, "CA certificate %s: clients trust it at /etc/docker/certs.d/HOST:PORT/ca.crt (HOST one of %s)\n",
			site.CAPath, strings.Join(site.Hostnames, ", "))
	}
	if users, _ := site.Users(); len(users) > 0 {
		fmt.Fprintf(e.stdout, "users: %s (log in with docker login, or an auths entry in ~/.docker/config.json)\n", strings.Join(users, ", "))
	}
}

func setRegistryUser(e *env, site *registry.Site, user string, fromStdin bool, stdin io.Reader) error {
	var password string
	if fromStdin {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && err != io.EOF {
			return err
		}
		password = strings.TrimRight(line, "\r\n")
	} else {
		var b [18]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		password = base64.RawURLEncoding.EncodeToString(b[:])
	}
	if err := site.SetUser(user, password); err != nil {
		return err
	}
	if !fromStdin {
		fmt.Fprintf(e.stdout, "user %s password %s (shown once)\n", user, password)
	}
	return nil
}
