package egress_test

import (
	"context"
	"log/slog"
	"net"
	"os"

	"github.com/cortexrt/cortex/internal/egress"
)

// How the daemon wires the gateway: one Gateway, one Netns per agent
// namespace, before the agent's first instruction runs. (Not run: it needs
// root and an agent namespace.)
func ExampleGateway_ServeNetns() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	// From the daemon config's egress.hosts.
	g, err := egress.New(egress.Config{Hosts: map[string]string{"api.allowed.test": "127.0.0.1"}}, logger)
	if err != nil {
		panic(err)
	}
	defer g.Close()
	// The LLM gateway, reachable by the agents the daemon enables it for.
	err = g.RegisterInternal("llm.cortex.internal", func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", "/run/cortex/llm.sock")
	})
	if err != nil {
		panic(err)
	}

	// Per agent: the manifest's network.access (validated at load time).
	policy, err := egress.ParsePolicy([]string{"api.example.com", "*.example.org", "ice-kernel", "db.example.com:5432"})
	if err != nil {
		panic(err)
	}
	netns, err := os.Open("/proc/12345/ns/net") // the sandbox's namespace
	if err != nil {
		panic(err)
	}
	defer netns.Close()
	agentLog := logger.With("agent", "assistant")
	a, err := g.ServeNetns(context.Background(), int(netns.Fd()), egress.NetnsOptions{
		Policy:   policy,
		Internal: []string{"llm.cortex.internal"},
		Logger:   agentLog,
		OnDeny: func(d egress.Denial) {
			agentLog.LogAttrs(context.Background(), slog.LevelWarn, "egress denied", d.Attrs()...)
		},
	})
	if err != nil {
		panic(err)
	}
	defer a.Close() // when the agent's sandbox is torn down

	_ = a.ResolvConf() // the sandbox writes this to the agent's /etc/resolv.conf
	_ = a.Env()        // and adds these to the agent's environment
}
