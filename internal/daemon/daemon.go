// Package daemon is cortexd: it owns every subsystem (store, logs,
// cgroups, runtimes, supervisor, and the wirings of egress, bus and the
// LLM gateway), wires them together in one place, and serves the REST API
// on the unix socket and, with api.listen, over TLS, every request through
// the security pipeline of internal/auth and into the audit log of
// internal/audit. cmd/cortexd only parses flags and calls Run.
package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/cortexrt/cortex/internal/audit"
	"github.com/cortexrt/cortex/internal/auth"
	"github.com/cortexrt/cortex/internal/bus"
	"github.com/cortexrt/cortex/internal/cgroups"
	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/egress"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/events"
	"github.com/cortexrt/cortex/internal/hooks"
	"github.com/cortexrt/cortex/internal/llm"
	"github.com/cortexrt/cortex/internal/logkey"
	"github.com/cortexrt/cortex/internal/logs"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/runtimes"
	"github.com/cortexrt/cortex/internal/store"
	"github.com/cortexrt/cortex/internal/supervisor"
	"github.com/cortexrt/cortex/internal/txn"
	"golang.org/x/sys/unix"
)

// Version is the build's version, set with -ldflags.
var Version = "0.1.0-dev"

// Options configure a daemon.
type Options struct {
	Paths config.Paths
	// Env is the environment cmd/cortexd read (config.FromEnv).
	Env    config.Env
	Logger *slog.Logger
	// InitPath is the binary re-exec'd as the sandbox init; "" = this one.
	InitPath string
}

// Daemon is cortexd: every subsystem, built once.
type Daemon struct {
	paths   config.Paths
	cfg     *config.Config
	log     *slog.Logger
	lock    *os.File
	store   *store.Store
	logs    *logs.Store
	cgroups cgroups.Manager
	rt      *runtimes.Registry
	sup     *supervisor.Supervisor
	walls   Walls
	defs    manifest.DaemonDefaults

	egressGW *egress.Gateway
	egress   *egressWiring
	llm      *llm.Gateway
	llmSvc   *llmService
	bus      *bus.Server

	// events is the one stream of typed facts every subsystem emits on
	// and every consumer subscribes to (internal/events).
	events *events.Stream
	// learning collects each project's refusals and runs --learn.
	learning *learning

	// audit is the tamper-evident log every API request and lifecycle
	// event goes into; authStore the API keys, CA and client
	// certificates; pipeline the API's one request path.
	audit     *audit.Log
	authStore *auth.Store
	pipeline  *auth.Pipeline
	// patterns are the routes handler registered.
	patterns []string
	// env is the environment cmd/cortexd read.
	env config.Env
	// txns are repair transactions (var/lib/cortex/ops); hooks runs the
	// lifecycle hooks (etc/cortex/hooks).
	txns  *txn.Store
	hooks *hooks.Runner

	// runMu serialises project creation (extract, validate, start).
	runMu sync.Mutex
	// background goroutines owned by the daemon, stopped by Close.
	bg     sync.WaitGroup
	bgMu   sync.Mutex
	stopBG []context.CancelFunc
}

// New builds the daemon: takes the root's lock, opens state, detects the
// host's walls and reattaches to agents left by an earlier daemon.
func New(ctx context.Context, opts Options) (*Daemon, error) {
	p := opts.Paths
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := prepareState(p, log); err != nil {
		return nil, fmt.Errorf("prepare directories under %s: %w", p.Root, err)
	}
	d := &Daemon{paths: p, log: log, events: events.New(), env: opts.Env}
	d.learning = newLearning(d.events, cgroupParent(p.Root), log.With(logkey.Subsystem, "learn"))
	lock, err := lockRoot(p)
	if err != nil {
		return nil, err
	}
	d.lock = lock
	ok := false
	defer func() {
		if !ok {
			d.Close()
		}
	}()

	if d.cfg, err = config.Load(p.ConfigFile); err != nil {
		return nil, errdefs.Wrap(errdefs.InvalidArgument, err)
	}
	if d.defs, err = d.cfg.DaemonDefaults(); err != nil {
		return nil, errdefs.Wrap(errdefs.InvalidArgument, err)
	}
	if d.store, err = store.Open(filepath.Join(p.LibDir, "state.db")); err != nil {
		return nil, err
	}
	if err := d.openSecurity(); err != nil {
		return nil, err
	}
	if ps, err := d.store.ListProjects(ctx); err == nil {
		owners := map[string]int{}
		for _, pr := range ps {
			owners[pr.Name] = pr.OwnerUID
		}
		repairProjects(filepath.Join(p.LibDir, "projects"), owners, log)
	}
	if d.logs, err = logs.Open(logs.Options{Dir: p.LogDir, SegmentSize: int64(d.cfg.Logs.SegmentSize), Segments: d.cfg.Logs.Segments}, log); err != nil {
		return nil, err
	}
	if d.cgroups, err = cgroups.New(cgroupParent(p.Root), log.With(logkey.Subsystem, "cgroups")); err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	d.rt = runtimes.NewRegistry(d.cfg.Runtimes, opts.Env.PyenvRoot)
	if _, err := runtimes.Install(p.ShareDir); err != nil {
		return nil, fmt.Errorf("install runtime shims: %w", err)
	}
	if err := installSDK(p.ShareDir); err != nil {
		return nil, fmt.Errorf("install SDKs: %w", err)
	}
	shareReadable(p.ShareDir, log)
	d.walls = probeWalls(d.cfg)
	if d.bus, err = bus.New(ctx, d.cfg.Bus, filepath.Join(p.LibDir, "bus"), log); err != nil {
		return nil, fmt.Errorf("bus: %w", err)
	}
	d.bus.SetEvents(d.events)
	if d.llm, err = llm.New(d.cfg.LLM, llm.Dirs{Cache: filepath.Join(p.CacheDir, "llm"), State: filepath.Join(p.LibDir, "llm")}, config.Getenv, log); err != nil {
		return nil, fmt.Errorf("llm gateway: %w", err)
	}
	d.llm.SetEvents(d.events)
	d.llmSvc = newLLMService(d.llm, log.With(logkey.Subsystem, "llm"))
	d.goBG(func(context.Context) { d.llmSvc.serve() })
	if d.txns, err = txn.Open(txnDir(p)); err != nil {
		return nil, err
	}
	if gw, err := newEgressGateway(d.cfg, log); err != nil {
		return nil, fmt.Errorf("egress gateway: %w", err)
	} else {
		d.egressGW = gw
		if err := gw.RegisterInternal(llm.Host, d.llmSvc.dial); err != nil {
			return nil, err
		}
		d.egress = newEgressWiring(gw, d.logs, d.events)
		d.egress.learn = d.learning.isLearning
		d.egress.internal = func(a supervisor.AgentInfo) []string {
			if len(a.Agent.Capabilities.LLMAccess) > 0 {
				return []string{llm.Host}
			}
			return nil
		}
		d.goBG(d.egress.saveLoop)
	}
	initPath := opts.InitPath
	if initPath == "" {
		if exe, err := os.Executable(); err == nil {
			initPath = exe
		}
	}
	d.sup = supervisor.New(supervisor.Options{
		Store:          d.store,
		Logs:           d.logs,
		Cgroups:        d.cgroups,
		Runtimes:       d.rt,
		Logger:         log,
		RunDir:         filepath.Join(p.RunDir, "agents"),
		DataDir:        filepath.Join(p.LibDir, "projects"),
		ShareDir:       p.ShareDir,
		LayersDir:      filepath.Join(p.LibDir, "layers"),
		InitPath:       initPath,
		Sandbox:        d.walls.sandboxOptions(int64(d.cfg.Sandbox.TmpSize)),
		Wirings:        d.wirings(),
		BackoffInitial: d.cfg.Supervisor.BackoffInitial,
		BackoffMax:     d.cfg.Supervisor.BackoffMax,
		KillGrace:      d.cfg.Supervisor.KillGrace,
		Events:         d.events,
	})
	d.startHooks()
	if err := d.sup.Recover(ctx); err != nil {
		return nil, fmt.Errorf("recover agents: %w", err)
	}
	d.setBrokers(ctx)
	d.announce()
	ok = true
	d.events.Emit(events.Event{Type: events.DaemonStart, Detail: events.DaemonDetail{Version: Version, PID: os.Getpid()}})
	return d, nil
}

// cgroupParent names the daemon's cgroup parent: "cortex" for the FHS
// root, "cortex-<hash>" for a CORTEX_ROOT, so daemons side by side never
// touch each other's groups.
func cgroupParent(root string) string {
	if root == "/" || root == "" {
		return "cortex"
	}
	h := sha256.Sum256([]byte(root))
	return "cortex-" + hex.EncodeToString(h[:6])
}

// lockRoot makes sure only one daemon serves a root.
func lockRoot(p config.Paths) (*os.File, error) {
	path := filepath.Join(p.RunDir, "cortexd.pid")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	_ = f.Chmod(0o644) // anyone may read which pid serves the root
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		data, _ := os.ReadFile(path)
		f.Close()
		return nil, errdefs.New(errdefs.AlreadyExists, "another cortexd (pid %s) serves %s", string(trimNL(data)), p.Root)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// Close releases everything. Agents keep running: a new daemon
// reattaches to them.
func (d *Daemon) Close() {
	if d.events != nil {
		d.events.Emit(events.Event{Type: events.DaemonStop, Detail: events.DaemonDetail{Version: Version, PID: os.Getpid()}})
	}
	if d.sup != nil {
		d.sup.Close()
	}
	d.bgMu.Lock()
	for _, stop := range d.stopBG {
		stop()
	}
	d.bgMu.Unlock()
	if d.llmSvc != nil {
		d.llmSvc.close()
	}
	d.bg.Wait()
	d.closeSecurity()
	if d.learning != nil {
		d.learning.close()
	}
	// The cgroup parent goes once no agent's group is left in it (agents
	// still running keep theirs, and the parent, for the next daemon).
	if d.cgroups != nil {
		if err := d.cgroups.RemoveParent(); err != nil && !errdefs.IsFailedPrecondition(err) && d.log != nil {
			d.log.Warn("remove the cgroup parent", "err", err)
		}
	}
	if d.egressGW != nil {
		_ = d.egressGW.Close()
	}
	if d.llm != nil {
		_ = d.llm.Close()
	}
	if d.bus != nil {
		_ = d.bus.Close()
	}
	if d.logs != nil {
		_ = d.logs.Close()
	}
	if d.store != nil {
		_ = d.store.Close()
	}
	if d.events != nil {
		d.events.Close()
	}
	if d.lock != nil {
		_ = d.lock.Close()
	}
}

// goBG runs fn in a goroutine the daemon owns; Close cancels its context
// and waits for it.
func (d *Daemon) goBG(fn func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	d.bgMu.Lock()
	d.stopBG = append(d.stopBG, cancel)
	d.bg.Add(1)
	d.bgMu.Unlock()
	go func() {
		defer d.bg.Done()
		fn(ctx)
	}()
}

// Serve listens on the API socket (and, with api.listen, on TCP with
// TLS) until ctx is done.
func (d *Daemon) Serve(ctx context.Context) error {
	ln, err := listenUnix(d.paths.Socket)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           d.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ConnContext:       auth.ConnContext,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if d.cfg.API.Listen != "" {
		tln, err := d.listenTLS()
		if err != nil {
			_ = srv.Close()
			_ = os.Remove(d.paths.Socket)
			return err
		}
		go func() { errc <- srv.Serve(tln) }()
	}
	d.log.Info("cortexd serving", "socket", d.paths.Socket, "root", d.paths.Root, "version", Version, "cgroup_version", d.cgroups.Version(), "degraded", d.walls.Missing)
	select {
	case <-ctx.Done():
	case err := <-errc:
		_ = srv.Close()
		return err
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	_ = os.Remove(d.paths.Socket)
	_ = os.Remove(filepath.Join(d.paths.RunDir, "api.addr"))
	return nil
}

// listenUnix binds the API socket, replacing a stale one, with mode 0660
// and group "cortex" when that group exists.
func listenUnix(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, errdefs.New(errdefs.AlreadyExists, "a daemon already answers on %s", path)
	}
	_ = os.Remove(path)
	old := syscall.Umask(0o117)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if g, err := user.LookupGroup("cortex"); err == nil {
		if gid, err := strconv.Atoi(g.Gid); err == nil {
			_ = os.Chown(path, 0, gid)
		}
	}
	_ = os.Chmod(path, 0o660)
	return ln, nil
}

// Run is cortexd's main: build, serve until ctx is done, close.
func Run(ctx context.Context, opts Options) error {
	unix.Umask(Umask)
	d, err := New(ctx, opts)
	if err != nil {
		return err
	}
	defer d.Close()
	err = d.Serve(ctx)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
