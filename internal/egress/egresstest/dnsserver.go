package egresstest

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// DNSServer is a fake upstream resolver on the host's loopback. It answers
// A queries from a fixed table (NXDOMAIN otherwise) and records every query
// it receives, so a test can prove a name never reached it.
type DNSServer struct {
	Addr string // host:port (udp and tcp)

	srv     []*dns.Server
	mu      sync.Mutex
	records map[string]string
	queries []string
}

// NewDNSServer starts a server answering records (name -> IPv4 or IPv6
// address) until the test ends.
func NewDNSServer(t testing.TB, records map[string]string) *DNSServer {
	t.Helper()
	s := &DNSServer{records: map[string]string{}}
	for k, v := range records {
		s.records[dns.Fqdn(strings.ToLower(k))] = v
	}
	// UDP and TCP on the same port; the TCP port may be taken, so retry.
	var (
		pc  net.PacketConn
		l   net.Listener
		err error
	)
	for range 20 {
		if pc, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if l, err = net.Listen("tcp4", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(s.serve)
	started := make(chan struct{}, 2)
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}} {
		srv.NotifyStartedFunc = func() { started <- struct{}{} }
		s.srv = append(s.srv, srv)
		go srv.ActivateAndServe()
	}
	<-started
	<-started
	t.Cleanup(func() {
		for _, srv := range s.srv {
			srv.Shutdown()
		}
	})
	return s
}

func (s *DNSServer) serve(w dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	resp.SetReply(req)
	s.mu.Lock()
	for _, q := range req.Question {
		s.queries = append(s.queries, strings.ToLower(q.Name)+" "+dns.TypeToString[q.Qtype])
	}
	var addr string
	if len(req.Question) == 1 {
		addr = s.records[strings.ToLower(req.Question[0].Name)]
	}
	s.mu.Unlock()
	if addr == "" {
		resp.Rcode = dns.RcodeNameError
		w.WriteMsg(resp)
		return
	}
	q := req.Question[0]
	ip := net.ParseIP(addr)
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 5}
	switch {
	case q.Qtype == dns.TypeA && ip.To4() != nil:
		hdr.Rrtype = dns.TypeA
		resp.Answer = append(resp.Answer, &dns.A{Hdr: hdr, A: ip.To4()})
	case q.Qtype == dns.TypeAAAA && ip.To4() == nil:
		hdr.Rrtype = dns.TypeAAAA
		resp.Answer = append(resp.Answer, &dns.AAAA{Hdr: hdr, AAAA: ip})
	}
	w.WriteMsg(resp)
}

// Queries returns "name. TYPE" for every query received so far.
func (s *DNSServer) Queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queries...)
}

// Resolver is a *net.Resolver (host namespace) that asks only this server.
func (s *DNSServer) Resolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, s.Addr)
		},
	}
}
