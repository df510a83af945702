package llm

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/events"
	"github.com/cortexrt/cortex/internal/llm/anthropic"
	"github.com/cortexrt/cortex/internal/llm/canon"
	"github.com/cortexrt/cortex/internal/llm/gemini"
	"github.com/cortexrt/cortex/internal/llm/openai"
	"github.com/cortexrt/cortex/internal/logkey"
	"github.com/cortexrt/cortex/internal/manifest"
)

// Host is the name agents reach the gateway at, on port 80, inside every
// sandbox (the egress gateway routes it to AgentHandler).
const Host = "llm.cortex.internal"

// Dirs are the directories the daemon gives the gateway.
type Dirs struct {
	Cache string // the response cache, e.g. var/cache/cortex/llm
	State string // usage and agent registrations, e.g. var/lib/cortex/llm
}

// Gateway is the LLM gateway. It is safe for concurrent use; Close stops it.
type Gateway struct {
	cfg       config.LLM
	events    atomic.Pointer[events.Stream]
	log       *slog.Logger
	providers map[string]*canon.Provider
	routes    map[string]*route
	cache     *diskCache // nil when the cache is off
	store     *store
	meter     *meter
	scrubber  *strings.Replacer
	transport *http.Transport
	now       func() time.Time
	rnd       func() float64

	// regMu serialises registrations (which write the store); mu guards
	// the maps requests read, and is never held across store I/O.
	regMu    sync.Mutex
	mu       sync.RWMutex
	byToken  map[[32]byte]*agentEntry
	byName   map[[2]string]*agentEntry
	projects map[string]*manifest.LLMBudget

	// stateDir holds the store and the projects' cassettes; cassettes
	// (by project) are guarded by mu, uploads by upMu.
	stateDir  string
	cassettes map[string]*projectCassette
	upMu      sync.Mutex
	uploads   map[string]*upload

	stop   context.CancelFunc
	wg     sync.WaitGroup
	closed chan struct{}
	once   sync.Once
}

type agentEntry struct {
	project, agent string
	token          string
	aliases        []string
	budget         *manifest.LLMBudget
}

func (a *agentEntry) granted(alias string) bool { return slices.Contains(a.aliases, alias) }

// flushInterval is how often usage is written to the store.
const flushInterval = time.Second

// New validates cfg, loads provider keys (refusing a key file readable by
// group or others; getenv reads an api_key_env variable), opens the cache
// and state under dirs, and starts the usage flusher. It does not listen on
// anything.
func New(cfg config.LLM, dirs Dirs, getenv func(string) string, logger *slog.Logger) (*Gateway, error) {
	return newGateway(cfg, dirs, logger, getenv, time.Now)
}

func newGateway(cfg config.LLM, dirs Dirs, logger *slog.Logger, getenv func(string) string, now func() time.Time) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, errdefs.Wrap(errdefs.InvalidArgument, err)
	}
	if dirs.State == "" {
		return nil, errdefs.New(errdefs.InvalidArgument, "llm gateway: no state dir")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{
		cfg: cfg, log: logger.With(logkey.Subsystem, "llm"), now: now, rnd: mrand.Float64,
		providers: map[string]*canon.Provider{}, routes: map[string]*route{},
		byToken: map[[32]byte]*agentEntry{}, byName: map[[2]string]*agentEntry{},
		closed: make(chan struct{}), stateDir: dirs.State, cassettes: map[string]*projectCassette{}, uploads: map[string]*upload{},
	}
	g.transport = &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	client := &http.Client{Transport: g.transport}
	var secrets []string
	for _, pc := range cfg.Providers {
		key, err := loadKey(pc, getenv)
		if err != nil {
			return nil, err
		}
		if !key.Empty() {
			secrets = append(secrets, key.Reveal(), "[redacted]")
		}
		base := strings.TrimRight(pc.BaseURL, "/")
		if base == "" {
			base = config.DefaultBaseURL(pc.Kind)
		}
		g.providers[pc.Name] = &canon.Provider{Name: pc.Name, Kind: pc.Kind, BaseURL: base, Key: key, Headers: pc.Headers, Client: client}
	}
	g.scrubber = strings.NewReplacer(secrets...)
	conns := map[string]canon.Connector{}
	for name, p := range g.providers {
		switch p.Kind {
		case config.ProviderOpenAI:
			conns[name] = openai.New(p, false)
		case config.ProviderOpenAICompatible:
			conns[name] = openai.New(p, true)
		case config.ProviderAnthropic:
			conns[name] = anthropic.New(p, cfg.Defaults.MaxTokens)
		case config.ProviderGemini:
			conns[name] = gemini.New(p)
		}
	}
	provCfg := map[string]config.LLMProvider{}
	for _, pc := range cfg.Providers {
		provCfg[pc.Name] = pc
	}
	healths := map[string]*health{}
	for name, a := range cfg.Aliases {
		rt := &route{name: name, strategy: a.Strategy, cache: cfg.Cache.Enabled && (a.Cache == nil || *a.Cache), retries: cfg.Routing.Retries}
		if a.Retries != nil {
			rt.retries = *a.Retries
		}
		var fp []string
		for _, tc := range a.Targets {
			p := g.providers[tc.Provider]
			timeout := cfg.Routing.Timeout
			if pt := provCfg[tc.Provider].Timeout; pt > 0 {
				timeout = pt
			}
			if tc.Timeout > 0 {
				timeout = tc.Timeout
			}
			hk := tc.Provider + "/" + tc.Model
			if healths[hk] == nil {
				healths[hk] = &health{}
			}
			price, priced := priceFor(cfg.Prices, p.Kind, tc.Model, tc.Price)
			rt.targets = append(rt.targets, &target{prov: p, conn: conns[tc.Provider], model: tc.Model, weight: tc.Weight, timeout: timeout, price: price, priced: priced, health: healths[hk]})
			if tc.Weight > 0 && rt.strategy == "" {
				rt.strategy = config.StrategyWeighted
			}
			fp = append(fp, hk)
		}
		if rt.strategy == "" {
			rt.strategy = config.StrategyOrdered
		}
		rt.fingerprint = strings.Join(fp, ",")
		g.routes[name] = rt
	}
	var err error
	if cfg.Cache.Enabled {
		if dirs.Cache == "" {
			return nil, errdefs.New(errdefs.InvalidArgument, "llm gateway: cache enabled but no cache dir")
		}
		if g.cache, err = openCache(dirs.Cache, cfg.Cache.TTL, int64(cfg.Cache.MaxSize), now); err != nil {
			return nil, err
		}
	}
	if g.store, err = openStore(dirs.State); err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	g.stop = stop
	if g.meter, err = newMeter(ctx, g.store, now); err != nil {
		stop()
		g.store.close()
		return nil, err
	}
	if err := g.loadAgents(); err != nil {
		stop()
		g.store.close()
		return nil, err
	}
	if err := g.loadCassettes(); err != nil {
		stop()
		g.store.close()
		return nil, err
	}
	g.wg.Add(1)
	go g.flusher(ctx)
	return g, nil
}

func (g *Gateway) loadAgents() error {
	agents, err := g.store.agents()
	if err != nil {
		return err
	}
	for _, a := range agents {
		e := &agentEntry{project: a.project, agent: a.agent, token: a.token, aliases: a.aliases, budget: a.budget}
		g.byName[[2]string{a.project, a.agent}] = e
		g.byToken[tokenHash(a.token)] = e
	}
	g.projects, err = g.store.projects()
	return err
}

// flusher writes usage every flushInterval until ctx ends.
func (g *Gateway) flusher(ctx context.Context) {
	defer g.wg.Done()
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := g.meter.flush(ctx); err != nil && ctx.Err() == nil {
				g.log.Error("llm usage flush", logkey.Err, err)
			}
		}
	}
}

// Close stops the flusher, writes pending usage and closes the state. It
// does not wait for requests in flight; the daemon stops its listeners
// first.
func (g *Gateway) Close() error {
	var err error
	g.once.Do(func() {
		close(g.closed)
		g.stop()
		g.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = g.meter.flush(ctx)
		err = errors.Join(err, g.store.close())
		g.transport.CloseIdleConnections()
	})
	return err
}

func tokenHash(tok string) [32]byte { return sha256.Sum256([]byte(tok)) }

// tokenPrefix marks Cortex agent tokens (they are not provider keys).
const tokenPrefix = "cxk_"

// RegisterAgent grants project/agent the aliases (its llm.access) under an
// optional budget (its llm.budget) and returns its token: 256 random bits.
// Registering an agent again (a restart) updates its grant and budget and
// returns the same token; the registration survives daemon restarts so a
// reattached agent keeps working. Aliases the daemon config lacks are
// refused, naming the known ones.
func (g *Gateway) RegisterAgent(project, agent string, aliases []string, budget *manifest.LLMBudget) (string, error) {
	if project == "" || agent == "" {
		return "", errdefs.New(errdefs.InvalidArgument, "llm: register agent: project and agent are required")
	}
	var unknown []string
	for _, a := range aliases {
		if g.routes[a] == nil && !g.replaying(project) {
			unknown = append(unknown, a)
		}
	}
	if len(unknown) > 0 {
		return "", errdefs.WithHint(
			errdefs.New(errdefs.InvalidArgument, "agent %s/%s: llm.access names unknown model aliases: %s", project, agent, strings.Join(unknown, ", ")),
			"use one of: "+strings.Join(g.aliasNames(), ", ")+", or add the alias under llm.aliases in the daemon config")
	}
	select {
	case <-g.closed:
		return "", errdefs.Wrap(errdefs.Unavailable, errClosed)
	default:
	}
	g.regMu.Lock()
	defer g.regMu.Unlock()
	key := [2]string{project, agent}
	g.mu.RLock()
	e := g.byName[key]
	g.mu.RUnlock()
	tok := ""
	if e != nil {
		tok = e.token
	} else {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("llm: generate token: %w", err)
		}
		tok = tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	}
	acc := append([]string(nil), aliases...)
	sort.Strings(acc)
	var bud *manifest.LLMBudget
	if budget != nil {
		b := *budget
		bud = &b
	}
	if err := g.store.saveAgent(storedAgent{project: project, agent: agent, token: tok, aliases: acc, budget: bud}); err != nil {
		return "", err
	}
	ne := &agentEntry{project: project, agent: agent, token: tok, aliases: acc, budget: bud}
	g.mu.Lock()
	g.byName[key] = ne
	g.byToken[tokenHash(tok)] = ne
	g.mu.Unlock()
	return tok, nil
}

// UnregisterAgent revokes the agent's token. Its usage history stays.
func (g *Gateway) UnregisterAgent(project, agent string) {
	g.regMu.Lock()
	defer g.regMu.Unlock()
	g.mu.Lock()
	key := [2]string{project, agent}
	if e := g.byName[key]; e != nil {
		delete(g.byToken, tokenHash(e.token))
		delete(g.byName, key)
	}
	g.mu.Unlock()
	g.meter.forget(project, agent)
	if err := g.store.deleteAgent(project, agent); err != nil {
		g.log.Error("llm unregister agent", logkey.Project, project, logkey.Agent, agent, logkey.Err, err)
	}
}

// SetProjectBudget sets (nil: clears) a budget shared by all agents of
// project, on top of each agent's own. The daemon may pass the manifest's
// global_capabilities llm.budget here.
func (g *Gateway) SetProjectBudget(project string, budget *manifest.LLMBudget) error {
	var b *manifest.LLMBudget
	if budget != nil {
		c := *budget
		b = &c
	}
	g.regMu.Lock()
	defer g.regMu.Unlock()
	if err := g.store.saveProject(project, b); err != nil {
		return fmt.Errorf("llm: set project budget %s: %w", project, err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if b == nil {
		delete(g.projects, project)
	} else {
		g.projects[project] = b
	}
	return nil
}

// Env returns the environment an agent needs to reach the gateway with the
// official SDKs or plain HTTP: base URLs for OpenAI and Anthropic clients
// and the agent's token (never a provider key) as both API keys.
func Env(token string) []string {
	return []string{
		"OPENAI_BASE_URL=http://" + Host + "/v1",
		"OPENAI_API_KEY=" + token,
		"ANTHROPIC_BASE_URL=http://" + Host,
		"ANTHROPIC_API_KEY=" + token,
	}
}

type callerKey struct{}

// WithAgent marks ctx as coming from project/agent's sandbox. The egress
// gateway, which knows which sandbox a connection came from, sets it (for
// example in http.Server.ConnContext); AgentHandler then refuses, with 401,
// a token that belongs to any other agent.
func WithAgent(ctx context.Context, project, agent string) context.Context {
	return context.WithValue(ctx, callerKey{}, [2]string{project, agent})
}

func callerOf(ctx context.Context) ([2]string, bool) {
	v, ok := ctx.Value(callerKey{}).([2]string)
	return v, ok
}

func (g *Gateway) aliasNames() []string {
	names := make([]string, 0, len(g.routes))
	for n := range g.routes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// scrub removes every provider key from s (defence in depth: connectors
// already scrub what they report).
func (g *Gateway) scrub(s string) string { return g.scrubber.Replace(s) }
