package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/cortexrt/cortex/internal/llm"
	"github.com/cortexrt/cortex/internal/sandbox"
	"github.com/cortexrt/cortex/internal/supervisor"
	"golang.org/x/sys/unix"
)

// agentIdent travels in the context of an agent's served namespace, so
// an internal service (the LLM gateway) knows which sandbox a connection
// came from.
type agentIdentKey struct{}

type agentIdent struct{ project, agent string }

func withAgentIdent(ctx context.Context, project, agent string) context.Context {
	return context.WithValue(ctx, agentIdentKey{}, agentIdent{project, agent})
}

// llmService serves the LLM gateway's agent API to sandboxes: the egress
// gateway hands it each connection to llm.cortex.internal, tagged with the
// agent it came from, over a socketpair.
type llmService struct {
	gw  *llm.Gateway
	srv *http.Server
	ln  *connListener
}

func newLLMService(gw *llm.Gateway, log *slog.Logger) *llmService {
	s := &llmService{gw: gw, ln: newConnListener()}
	s.srv = &http.Server{
		Handler:           gw.AgentHandler(),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if ac, ok := c.(*identConn); ok {
				return llm.WithAgent(ctx, ac.id.project, ac.id.agent)
			}
			return ctx
		},
	}
	return s
}

func (s *llmService) serve() { _ = s.srv.Serve(s.ln) }

func (s *llmService) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	s.ln.Close()
}

// dial is the egress DialFunc for llm.cortex.internal.
func (s *llmService) dial(ctx context.Context) (net.Conn, error) {
	id, ok := ctx.Value(agentIdentKey{}).(agentIdent)
	if !ok {
		return nil, errors.New("llm: connection from an unknown sandbox")
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	mk := func(fd int, name string) (net.Conn, error) {
		f := os.NewFile(uintptr(fd), name)
		defer f.Close()
		return net.FileConn(f)
	}
	ours, err := mk(fds[0], "llm-agent")
	if err != nil {
		unix.Close(fds[1])
		return nil, err
	}
	theirs, err := mk(fds[1], "llm-gateway")
	if err != nil {
		ours.Close()
		return nil, err
	}
	if err := s.ln.push(ctx, &identConn{Conn: theirs, id: id}); err != nil {
		ours.Close()
		theirs.Close()
		return nil, err
	}
	return ours, nil
}

type identConn struct {
	net.Conn
	id agentIdent
}

// connListener is a net.Listener fed by push.
type connListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnListener() *connListener {
	return &connListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connListener) push(ctx context.Context, c net.Conn) error {
	select {
	case l.ch <- c:
		return nil
	case <-l.done:
		return net.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return &net.UnixAddr{Name: llm.Host, Net: "unix"} }

// llmWiring gives agents with llm.access their token and base URLs.
type llmWiring struct{ gw *llm.Gateway }

var _ supervisor.Wiring = llmWiring{}

func (l llmWiring) Prepare(ctx context.Context, a supervisor.AgentInfo, spec *sandbox.Spec) error {
	caps := a.Agent.Capabilities
	if len(caps.LLMAccess) == 0 {
		return nil
	}
	token, err := l.gw.RegisterAgent(a.Project, a.Agent.Name, caps.LLMAccess, caps.LLMBudget)
	if err != nil {
		return fmt.Errorf("llm.access: %w", err)
	}
	spec.Env = append(spec.Env, llm.Env(token)...)
	return nil
}

func (llmWiring) Wire(context.Context, supervisor.AgentInfo, int) (io.Closer, error) {
	return nil, nil
}
