package cluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/llm"
	"github.com/cortexrt/cortex/internal/manifest"
)

// LLMOptions are llm-gateway's flags.
type LLMOptions struct {
	Listen, Project string
	// Config is the gateway's llm configuration (the daemon config's llm:
	// section), from Secret cortex-llm-keys; provider keys are files of the
	// same Secret (api_key_file) or environment variables.
	Config string
	// Agents is the rendered agent list (ConfigMap cortex-llm-agents):
	// "NAME ALIAS,ALIAS [tokens_per_day=N dollars_per_day=F requests_per_minute=N]".
	Agents string
	// Tokens is a directory with one file per agent holding the token the
	// agent presents (Secret cortex-llm-tokens).
	Tokens string
	// State holds usage and the response cache (an emptyDir).
	State string
	Ready func(net.Addr)
}

func llmFlags() (*flag.FlagSet, runner) {
	var o LLMOptions
	fs := flag.NewFlagSet("llm-gateway", flag.ContinueOnError)
	fs.StringVar(&o.Listen, "listen", ":8080", "address")
	fs.StringVar(&o.Project, "project", "", "project")
	fs.StringVar(&o.Config, "config", "", "llm configuration (YAML)")
	fs.StringVar(&o.Agents, "agents", "", "agent list")
	fs.StringVar(&o.Tokens, "tokens", "", "directory of agent tokens")
	fs.StringVar(&o.State, "state", "", "state directory")
	return fs, func(ctx context.Context, log *slog.Logger) error { return LLMGateway(ctx, o, log) }
}

type llmAgent struct {
	name    string
	aliases []string
	budget  *manifest.LLMBudget
}

func parseAgents(path string) ([]llmAgent, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []llmAgent
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("%s:%d: want NAME ALIASES", path, n)
		}
		a := llmAgent{name: f[0], aliases: strings.Split(f[1], ",")}
		for _, kv := range f[2:] {
			k, v, _ := strings.Cut(kv, "=")
			if a.budget == nil {
				a.budget = &manifest.LLMBudget{}
			}
			var err error
			switch k {
			case "tokens_per_day":
				a.budget.TokensPerDay, err = strconv.ParseInt(v, 10, 64)
			case "dollars_per_day":
				a.budget.DollarsPerDay, err = strconv.ParseFloat(v, 64)
			case "requests_per_minute":
				a.budget.RequestsPerMinute, err = strconv.Atoi(v)
			default:
				err = fmt.Errorf("unknown key %q", k)
			}
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %v", path, n, err)
			}
		}
		out = append(out, a)
	}
	return out, sc.Err()
}

// LLMGateway serves the LLM gateway's agent API until ctx ends. An agent
// presents its own token (from Secret cortex-llm-tokens, mounted into its
// container only); the gateway swaps it for the token the llm package
// issued when the agent was registered, so budgets, aliases and usage are
// per agent exactly as on a node. Provider keys never leave this pod.
func LLMGateway(ctx context.Context, o LLMOptions, log *slog.Logger) error {
	for n, v := range map[string]string{"project": o.Project, "config": o.Config, "agents": o.Agents, "tokens": o.Tokens, "state": o.State} {
		if err := required(n, v); err != nil {
			return err
		}
	}
	data, err := os.ReadFile(o.Config)
	if err != nil {
		return err
	}
	cfg, err := config.ParseLLM(data, o.Config)
	if err != nil {
		return errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("%s: %w", o.Config, err))
	}
	agents, err := parseAgents(o.Agents)
	if err != nil {
		return errdefs.Wrap(errdefs.InvalidArgument, err)
	}
	gw, err := llm.New(cfg, llm.Dirs{Cache: filepath.Join(o.State, "cache"), State: filepath.Join(o.State, "state")}, config.Getenv, log)
	if err != nil {
		return err
	}
	defer gw.Close()
	swap := map[[32]byte]string{}
	for _, a := range agents {
		internal, err := gw.RegisterAgent(o.Project, a.name, a.aliases, a.budget)
		if err != nil {
			return err
		}
		t, err := os.ReadFile(filepath.Join(o.Tokens, a.name))
		if err != nil {
			return fmt.Errorf("token of agent %s: %w", a.name, err)
		}
		tok := strings.TrimSpace(string(t))
		if len(tok) < 16 {
			return fmt.Errorf("token of agent %s is too short", a.name)
		}
		swap[sha256.Sum256([]byte(tok))] = internal
	}
	inner := gw.AgentHandler()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimSpace(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		if tok == "" {
			tok = strings.TrimSpace(r.Header.Get("x-api-key"))
		}
		internal, ok := swap[sha256.Sum256([]byte(tok))]
		if tok == "" || !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"type":"authentication_error","message":"unknown agent token: send the agent's OPENAI_API_KEY or ANTHROPIC_API_KEY"}}`))
			return
		}
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+internal)
		if r.Header.Get("x-api-key") != "" {
			r.Header.Set("x-api-key", internal)
		}
		inner.ServeHTTP(w, r)
	})
	l, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	log.Info("llm gateway serving", "addr", l.Addr().String(), "agents", len(agents))
	if o.Ready != nil {
		o.Ready(l.Addr())
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
