package cluster

import (
	"context"
	"flag"
	"log/slog"
	"os"

	"github.com/nats-io/nats.go"

	"github.com/cortexrt/cortex/internal/bus"
)

// BusOptions are bus-sidecar's flags.
type BusOptions struct {
	NATS, Project, Agent, Socket string
	// Token authenticates to NATS (from the environment variable
	// CORTEX_NATS_TOKEN, set from Secret cortex-bus).
	Token                       string
	Publish, Subscribe, Durable []string
	PublishNone, SubscribeNone  bool
}

func busFlags() (*flag.FlagSet, runner) {
	var o BusOptions
	var pub, sub, dur list
	fs := flag.NewFlagSet("bus-sidecar", flag.ContinueOnError)
	fs.StringVar(&o.NATS, "nats", "", "the cluster's NATS URL")
	fs.StringVar(&o.Project, "project", "", "project")
	fs.StringVar(&o.Agent, "agent", "", "agent")
	fs.StringVar(&o.Socket, "socket", "/run/cortex/bus.sock", "the agent's socket")
	fs.Var(&pub, "publish", "bus.publish entry (repeatable; none given: every channel)")
	fs.Var(&sub, "subscribe", "bus.subscribe entry (repeatable; none given: every channel)")
	fs.Var(&dur, "durable", "durable channel (repeatable)")
	fs.BoolVar(&o.PublishNone, "publish-none", false, "bus.publish: [] (no channel)")
	fs.BoolVar(&o.SubscribeNone, "subscribe-none", false, "bus.subscribe: [] (no channel)")
	return fs, func(ctx context.Context, log *slog.Logger) error {
		o.Publish, o.Subscribe, o.Durable = pub, sub, dur
		o.Token = os.Getenv("CORTEX_NATS_TOKEN")
		return BusSidecar(ctx, o, log)
	}
}

// acl turns the flags back into a manifest ACL: nil allows every channel
// of the project, an empty list none.
func acl(entries []string, none bool) []string {
	if none {
		return []string{}
	}
	return entries
}

// BusSidecar serves the agent's socket until ctx ends.
func BusSidecar(ctx context.Context, o BusOptions, log *slog.Logger) error {
	for n, v := range map[string]string{"nats": o.NATS, "project": o.Project, "agent": o.Agent, "socket": o.Socket} {
		if err := required(n, v); err != nil {
			return err
		}
	}
	var opts []nats.Option
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
	}
	s, err := bus.NewRemote(ctx, bus.Config{}, o.NATS, log, opts...)
	if err != nil {
		return err
	}
	defer s.Close()
	pol := bus.Policy{Publish: acl(o.Publish, o.PublishNone), Subscribe: acl(o.Subscribe, o.SubscribeNone), Durable: o.Durable}
	// The agent container runs as the same user as this one.
	c, err := s.ServeAgent(ctx, bus.Identity{Project: o.Project, Agent: o.Agent}, pol, o.Socket, os.Getuid(), os.Getgid())
	if err != nil {
		return err
	}
	defer c.Close()
	log.Info("bus sidecar serving", "project", o.Project, "agent", o.Agent, "socket", o.Socket)
	<-ctx.Done()
	return nil
}
