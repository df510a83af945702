package registry

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"syscall"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// Process is a running registry child.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start runs the site's registry (binary "" finds the installed one) with
// its output on out, and waits until it answers on /v2/ or ctx ends.
func (s *Site) Start(ctx context.Context, binary string, out io.Writer) (*Process, error) {
	if binary == "" {
		b, err := FindBinary()
		if err != nil {
			return nil, err
		}
		binary = b
	}
	cmd := s.Command(binary)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	if err := s.waitReady(ctx, p); err != nil {
		p.Stop(5 * time.Second)
		return nil, err
	}
	return p, nil
}

// Pid is the registry's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the registry has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the registry's exit error, once Done is closed.
func (p *Process) Err() error { return p.err }

// Stop sends SIGTERM, then SIGKILL after grace, and waits for the exit.
func (p *Process) Stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// ProbeAddr is the address a client on this host dials to reach the
// site: the listen address, with an unspecified host replaced by loopback.
func (s *Site) ProbeAddr() string {
	host, port, _ := net.SplitHostPort(s.Addr)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// waitReady polls GET /v2/ until the registry answers (200, or 401 when
// it asks for credentials), the process exits or ctx ends. Readiness only:
// the certificate is not checked here.
func (s *Site) waitReady(ctx context.Context, p *Process) error {
	client := &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // readiness probe of our own child
			DisableKeepAlives: true,
		},
	}
	url := s.Scheme() + "://" + s.ProbeAddr() + "/v2/"
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		last = err
		select {
		case <-p.done:
			return errdefs.New(errdefs.Unavailable, "registry exited at start (%v); see its output above", p.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return errdefs.New(errdefs.Unavailable, "registry did not answer on %s within 30s: %v", url, last)
		case <-tick.C:
		}
	}
}
