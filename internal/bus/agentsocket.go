package bus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/logkey"
)

// maxSocketPath is the longest unix socket path the kernel accepts.
const maxSocketPath = 107

// agentSocket is the unix socket one agent's SDK connects to, and its
// connections.
type agentSocket struct {
	s    *Server
	id   Identity
	pol  Policy
	path string
	fi   os.FileInfo // the socket file we created, to remove only our own
	uid  int
	l    *net.UnixListener
	log  *slog.Logger

	mu     sync.Mutex
	closed bool
	conns  map[*conn]struct{}
	wg     sync.WaitGroup
}

// ServeAgent serves the bus protocol for one agent on a new unix socket at
// socketPath (its parent directory must exist). The socket is created with
// mode 0600 owned by uid:gid (-1 keeps the daemon's) and appears atomically,
// replacing a stale socket left at the path. Whoever connects speaks as id:
// the protocol has no field to claim another identity, and a peer whose uid
// is neither uid nor 0 is refused. Policy.Durable channels are created in
// the store before ServeAgent returns. Closing the returned io.Closer removes
// the socket, drops the agent's connections and returns their
// unacknowledged durable messages for redelivery; Server.Close does this
// for every agent socket still open.
//
// Bind-mount the socket's directory (not the socket file) into the
// sandbox: serving it again after a daemon restart replaces the file at
// socketPath, which a file bind mount, pinned to the old inode, would not
// show to the agent's reconnecting SDK.
func (s *Server) ServeAgent(ctx context.Context, id Identity, pol Policy, socketPath string, uid, gid int) (io.Closer, error) {
	if err := validName("project", id.Project); err != nil {
		return nil, err
	}
	if err := validName("agent", id.Agent); err != nil {
		return nil, err
	}
	for _, list := range [][]string{pol.Publish, pol.Subscribe} {
		for _, p := range list {
			if err := validPattern(p); err != nil {
				return nil, err
			}
		}
	}
	for _, ch := range pol.Durable {
		if err := ValidChannel(ch); err != nil {
			return nil, fmt.Errorf("bus.durable: %w", err)
		}
	}
	if s.isClosed() {
		return nil, errdefs.New(errdefs.Unavailable, "bus is closed")
	}
	for _, ch := range pol.Durable {
		if err := s.ensureDurable(ctx, id.Project, ch); err != nil {
			return nil, err
		}
	}
	l, fi, err := listenUnix(socketPath, uid, gid)
	if err != nil {
		return nil, err
	}
	a := &agentSocket{
		s: s, id: id, pol: pol, path: socketPath, fi: fi, uid: uid, l: l,
		log:   s.log.With(logkey.Project, id.Project, logkey.Agent, id.Agent),
		conns: map[*conn]struct{}{},
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		a.removeSocket()
		_ = l.Close()
		return nil, errdefs.New(errdefs.Unavailable, "bus is closed")
	}
	s.atts[a] = struct{}{}
	s.mu.Unlock()
	a.wg.Add(1)
	go a.acceptLoop()
	a.log.Debug("bus socket serving", "socket", socketPath, "uid", uid)
	return a, nil
}

// listenUnix binds the socket in a private temporary directory, sets its
// owner and mode, then renames it into place, so it is never reachable
// with looser permissions.
func listenUnix(path string, uid, gid int) (*net.UnixListener, os.FileInfo, error) {
	if len(path) > maxSocketPath {
		return nil, nil, errdefs.New(errdefs.InvalidArgument, "socket path %s is longer than %d bytes", path, maxSocketPath)
	}
	if st, err := os.Lstat(path); err == nil && st.Mode()&os.ModeSocket == 0 {
		return nil, nil, errdefs.New(errdefs.AlreadyExists, "%s exists and is not a socket", path)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".b")
	if err != nil {
		return nil, nil, fmt.Errorf("create bus socket %s: %w", path, err)
	}
	defer os.RemoveAll(tmp)
	tpath := filepath.Join(tmp, "s")
	if len(tpath) > maxSocketPath {
		return nil, nil, errdefs.New(errdefs.InvalidArgument, "socket path %s is too long to create safely; use a shorter directory", path)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tpath, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("listen on bus socket %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false)
	fail := func(err error) (*net.UnixListener, os.FileInfo, error) {
		_ = l.Close()
		return nil, nil, err
	}
	if uid >= 0 || gid >= 0 {
		if err := os.Lchown(tpath, uid, gid); err != nil {
			return fail(fmt.Errorf("chown bus socket %s: %w", path, err))
		}
	}
	if err := os.Chmod(tpath, 0o600); err != nil {
		return fail(fmt.Errorf("chmod bus socket %s: %w", path, err))
	}
	if err := os.Rename(tpath, path); err != nil {
		return fail(fmt.Errorf("place bus socket %s: %w", path, err))
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(fmt.Errorf("stat bus socket %s: %w", path, err))
	}
	return l, fi, nil
}

func (a *agentSocket) removeSocket() {
	if fi, err := os.Lstat(a.path); err == nil && os.SameFile(fi, a.fi) {
		_ = os.Remove(a.path)
	}
}

func (a *agentSocket) acceptLoop() {
	defer a.wg.Done()
	for {
		nc, err := a.l.AcceptUnix()
		if err != nil {
			a.mu.Lock()
			closed := a.closed
			a.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return
			}
			a.log.Warn("bus socket accept", logkey.Err, err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		c := newConn(a, nc)
		a.mu.Lock()
		if a.closed {
			a.mu.Unlock()
			_ = nc.Close()
			return
		}
		if len(a.conns) >= a.s.cfg.MaxConnsPerAgent {
			a.mu.Unlock()
			a.log.Warn("bus connection refused: too many", "limit", a.s.cfg.MaxConnsPerAgent)
			c.sendError("", "", errdefs.New(errdefs.Unavailable, "too many bus connections for agent %q (limit %d)", a.id.Agent, a.s.cfg.MaxConnsPerAgent))
			_ = nc.Close()
			continue
		}
		a.conns[c] = struct{}{}
		a.wg.Add(1)
		a.mu.Unlock()
		go func() {
			defer a.wg.Done()
			c.serve()
			a.mu.Lock()
			delete(a.conns, c)
			a.mu.Unlock()
		}()
	}
}

// Close removes the socket and ends the agent's connections. It is
// idempotent.
func (a *agentSocket) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	conns := make([]*conn, 0, len(a.conns))
	for c := range a.conns {
		conns = append(conns, c)
	}
	a.mu.Unlock()
	_ = a.l.Close()
	a.removeSocket()
	for _, c := range conns {
		_ = c.nc.Close()
	}
	a.wg.Wait()
	a.s.mu.Lock()
	delete(a.s.atts, a)
	a.s.mu.Unlock()
	a.log.Debug("bus socket detached", "socket", a.path)
	return nil
}
