package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/errdefs"
)

// connect returns a client for a daemon that answers: the one
// CORTEX_HOST or the client config's context names (a remote daemon over
// TLS, with an API key or a client certificate), else the local socket.
// With autostart, a missing local daemon is started in the background
// first (the embedded default), as `cortex run` does on a fresh machine;
// never when a host or context was named.
func (e *env) connect(ctx context.Context, autostart bool) (*api.Client, error) {
	if e.client != nil {
		return e.client, nil
	}
	c, ep, err := e.newClient()
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = c.Ping(pctx)
	cancel()
	if err == nil {
		e.client = c
		return c, nil
	}
	if !errdefs.IsUnavailable(err) || !autostart || !canAutostart || e.cfg.NoAutostart || !ep.Default {
		return nil, err
	}
	if err := e.startDaemon(ctx, c); err != nil {
		return nil, err
	}
	e.client = c
	return c, nil
}

// startDaemon starts cortexd detached (its own session, output to
// var/log/cortex/cortexd.log) and waits for its socket.
func (e *env) startDaemon(ctx context.Context, c *api.Client) error {
	bin, err := daemonBinary(e.cfg)
	if err != nil {
		return err
	}
	_, err = e.startDaemonBinary(ctx, c, bin)
	return err
}

// startDaemonBinary starts bin as the daemon, detached, and waits until it
// answers; it returns the process's pid (also when it did not answer).
func (e *env) startDaemonBinary(ctx context.Context, c *api.Client, bin string) (int, error) {
	paths := config.NewPaths(e.cfg.Root)
	// The daemon's log names projects, users and paths: root's only (as
	// the daemon keeps it, see internal/daemon/state.go).
	if err := os.MkdirAll(paths.LogDir, 0o750); err != nil {
		return 0, errdefs.WithHint(errdefs.Wrap(errdefs.PermissionDenied, err), "run as root (cortexd needs root), or start cortexd yourself")
	}
	logPath := filepath.Join(paths.LogDir, "cortexd.log")
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd := exec.Command(bin)
	cmd.Env = os.Environ()
	cmd.Stdout, cmd.Stderr = logf, logf
	if e.tty(e.stderr) {
		fmt.Fprintf(e.stderr, "Starting cortexd (%s, log %s)...\n", bin, logPath)
	}
	if err := startDetached(cmd); err != nil {
		return 0, errdefs.WithHint(errdefs.Wrap(errdefs.Unavailable, fmt.Errorf("start %s: %w", bin, err)), "set CORTEX_DAEMON to the cortexd binary")
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Ping(pctx)
		cancel()
		if err == nil {
			return pid, nil
		}
		select {
		case err := <-exited:
			return pid, errdefs.WithHint(errdefs.New(errdefs.Unavailable, "cortexd exited while starting (%v)", err), "see "+logPath)
		case <-ctx.Done():
			return pid, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return pid, errdefs.WithHint(errdefs.New(errdefs.Unavailable, "cortexd did not answer on %s within 20s", c.Addr), "see "+logPath)
}

// newClient makes the client of the endpoint the environment names.
func (e *env) newClient() (*api.Client, config.Endpoint, error) {
	ep, err := e.cfg.Endpoint()
	if err != nil {
		return nil, ep, err
	}
	if !ep.Remote() {
		c := api.NewClient(ep.Socket)
		c.SetAPIKey(ep.APIKey)
		return c, ep, nil
	}
	if ep.APIKey != "" && ep.Cert != "" {
		return nil, ep, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "both an API key and a client certificate are set for %s", ep.URL),
			"use one: unset CORTEX_API_KEY, or CORTEX_CERT and CORTEX_KEY (or the context's)")
	}
	c, err := api.NewRemoteClient(api.RemoteOptions{URL: ep.URL, CA: ep.CA, Cert: ep.Cert, Key: ep.Key, APIKey: ep.APIKey})
	return c, ep, err
}

// daemonBinary finds cortexd: the version cortex-ops update installed
// (usr/lib/cortex/current/cortexd under the root), then CORTEX_DAEMON,
// then beside this binary, then $PATH. An installed version comes first
// so that a daemon started after an update runs the updated binary.
func daemonBinary(env config.Env) (string, error) {
	if cur := filepath.Join(config.NewPaths(env.Root).ShareDir, "current", "cortexd"); fileExecutable(cur) {
		if real, err := filepath.EvalSymlinks(cur); err == nil {
			return real, nil
		}
	}
	if env.Daemon != "" {
		return env.Daemon, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "cortexd")
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath("cortexd"); err == nil {
		return p, nil
	}
	return "", errdefs.WithHint(errdefs.New(errdefs.Unavailable, "no cortexd answers and no cortexd binary was found"), "install cortexd beside cortex or set CORTEX_DAEMON")
}

func fileExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
