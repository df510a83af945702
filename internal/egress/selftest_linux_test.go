package egress

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/kerneltest"
	"github.com/miekg/dns"
)

func TestSelfTest(t *testing.T) {
	kerneltest.RequireRoot(t)
	kerneltest.Require(t, "egress gateway", Probe)
	g, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ev, err := g.SelfTest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ev, "refused a name not allowed (403)") {
		t.Errorf("evidence %q", ev)
	}
}

// TestResolverAnswers: a DNS server that answers (even REFUSED) is up; a
// port where none listens is down.
func TestResolverAnswers(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeRefused)
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	defer srv.Shutdown()
	if _, err := ResolverAnswers(context.Background(), pc.LocalAddr().String()); err != nil {
		t.Errorf("answering server: %v", err)
	}
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := dead.LocalAddr().String()
	dead.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := ResolverAnswers(ctx, addr); err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Errorf("dead server: %v", err)
	}
	// NewResolver sends lookups to the configured server.
	r := NewResolver(pc.LocalAddr().String())
	if _, err := r.LookupNetIP(context.Background(), "ip4", "example.test"); err == nil {
		t.Error("a REFUSED answer resolved")
	}
}
