package egress

import (
	"context"
	"net"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/miekg/dns"
)

// denialLog collects OnDeny calls.
type denialLog struct {
	mu sync.Mutex
	ds []Denial
}

func (l *denialLog) add(d Denial) {
	l.mu.Lock()
	l.ds = append(l.ds, d)
	l.mu.Unlock()
}

func (l *denialLog) take() []Denial {
	l.mu.Lock()
	defer l.mu.Unlock()
	ds := l.ds
	l.ds = nil
	return ds
}

var ignoreTime = cmpopts.IgnoreFields(Denial{}, "Time")

// newTestNetns builds a namespace with no kernel side, for the pure
// decision code (DNS answers, permits).
func newTestNetns(t *testing.T, entries, internal []string) (*Netns, *denialLog) {
	t.Helper()
	g, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(context.Context) (net.Conn, error) { return nil, net.ErrClosed }
	for _, n := range []string{"llm.cortex.internal", "other.cortex.internal"} {
		if err := g.RegisterInternal(n, dial); err != nil {
			t.Fatal(err)
		}
	}
	p, err := ParsePolicy(entries)
	if err != nil {
		t.Fatal(err)
	}
	log := &denialLog{}
	a, err := openNetns(g, NetnsOptions{Policy: p, Internal: internal, OnDeny: log.add})
	if err != nil {
		t.Fatal(err)
	}
	return a, log
}

func TestDNSAnswer(t *testing.T) {
	type want struct {
		rcode   int
		answers []string // RR strings without TTL-sensitive parts
		denial  *Denial
	}
	tests := []struct {
		name  string
		qname string
		qtype uint16
		edns  bool
		want  want
	}{
		{name: "allowed A", qname: "api.allowed.test.", qtype: dns.TypeA, want: want{answers: []string{"api.allowed.test.\t60\tIN\tA\t198.18.0.1"}}},
		{name: "allowed A case kept", qname: "API.Allowed.Test.", qtype: dns.TypeA, want: want{answers: []string{"API.Allowed.Test.\t60\tIN\tA\t198.18.0.1"}}},
		{name: "allowed AAAA nodata", qname: "api.allowed.test.", qtype: dns.TypeAAAA},
		{name: "allowed HTTPS nodata", qname: "api.allowed.test.", qtype: dns.TypeHTTPS},
		{name: "allowed TXT nodata", qname: "api.allowed.test.", qtype: dns.TypeTXT},
		{name: "wildcard", qname: "x.y.wild.test.", qtype: dns.TypeA, want: want{answers: []string{"x.y.wild.test.\t60\tIN\tA\t198.18.0.2"}}},
		{name: "single label", qname: "ice-kernel.", qtype: dns.TypeA, want: want{answers: []string{"ice-kernel.\t60\tIN\tA\t198.18.0.3"}}},
		{name: "unlisted", qname: "secret-data.attacker.example.", qtype: dns.TypeA, want: want{rcode: dns.RcodeNameError, denial: &Denial{Proto: "dns", Name: "secret-data.attacker.example", Reason: ReasonNameNotAllowed}}},
		{name: "unlisted TXT", qname: "secret-data.attacker.example.", qtype: dns.TypeTXT, want: want{rcode: dns.RcodeNameError, denial: &Denial{Proto: "dns", Name: "secret-data.attacker.example", Reason: ReasonNameNotAllowed}}},
		{name: "unlisted with EDE", qname: "evil.test.", qtype: dns.TypeA, edns: true, want: want{rcode: dns.RcodeNameError, denial: &Denial{Proto: "dns", Name: "evil.test", Reason: ReasonNameNotAllowed}}},
		{name: "wildcard apex", qname: "wild.test.", qtype: dns.TypeA, want: want{rcode: dns.RcodeNameError, denial: &Denial{Proto: "dns", Name: "wild.test", Reason: ReasonNameNotAllowed}}},
		{name: "escaped dot", qname: `a\.b.wild.test.`, qtype: dns.TypeA, want: want{rcode: dns.RcodeNameError, denial: &Denial{Proto: "dns", Name: `a\.b.wild.test`, Reason: ReasonNameNotAllowed}}},
		{name: "internal enabled", qname: "llm.cortex.internal.", qtype: dns.TypeA, want: want{answers: []string{"llm.cortex.internal.\t60\tIN\tA\t198.18.0.4"}}},
		{name: "internal not enabled", qname: "other.cortex.internal.", qtype: dns.TypeA, want: want{rcode: dns.RcodeNameError, denial: &Denial{Proto: "dns", Name: "other.cortex.internal", Reason: ReasonNameNotAllowed}}},
		{name: "localhost", qname: "localhost.", qtype: dns.TypeA, want: want{answers: []string{"localhost.\t60\tIN\tA\t127.0.0.1"}}},
		{name: "reverse synthetic", qname: "1.0.18.198.in-addr.arpa.", qtype: dns.TypePTR, want: want{answers: []string{"1.0.18.198.in-addr.arpa.\t60\tIN\tPTR\tapi.allowed.test."}}},
		{name: "reverse other", qname: "8.8.8.8.in-addr.arpa.", qtype: dns.TypePTR, want: want{rcode: dns.RcodeNameError, denial: &Denial{Proto: "dns", Name: "8.8.8.8.in-addr.arpa", Reason: ReasonNameNotAllowed}}},
		{name: "chaos class", qname: "version.bind.", qtype: dns.TypeTXT, want: want{rcode: dns.RcodeRefused, denial: &Denial{Proto: "dns", Name: "version.bind", Reason: ReasonNameNotAllowed}}},
	}
	// One namespace for the table: addresses are handed out in order and
	// stay stable, which the cases above rely on.
	a, log := newTestNetns(t, []string{"api.allowed.test", "*.wild.test", "ice-kernel"}, []string{"llm.cortex.internal"})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := new(dns.Msg)
			req.SetQuestion(tc.qname, tc.qtype)
			if tc.name == "chaos class" {
				req.Question[0].Qclass = dns.ClassCHAOS
			}
			if tc.edns {
				req.SetEdns0(1232, false)
			}
			pkt, err := req.Pack()
			if err != nil {
				t.Fatal(err)
			}
			out := a.handleDNS(pkt)
			resp := new(dns.Msg)
			if err := resp.Unpack(out); err != nil {
				t.Fatalf("unpack answer: %v", err)
			}
			if resp.Id != req.Id || !resp.Response || resp.Rcode != tc.want.rcode {
				t.Fatalf("id %d response %v rcode %s, want id %d rcode %s", resp.Id, resp.Response, dns.RcodeToString[resp.Rcode], req.Id, dns.RcodeToString[tc.want.rcode])
			}
			var got []string
			for _, rr := range resp.Answer {
				got = append(got, rr.String())
			}
			if diff := cmp.Diff(tc.want.answers, got); diff != "" {
				t.Errorf("answers (-want +got):\n%s", diff)
			}
			var wantDenials []Denial
			if tc.want.denial != nil {
				wantDenials = []Denial{*tc.want.denial}
			}
			if diff := cmp.Diff(wantDenials, log.take(), ignoreTime); diff != "" {
				t.Errorf("denials (-want +got):\n%s", diff)
			}
			if tc.edns {
				opt := resp.IsEdns0()
				if opt == nil || len(opt.Option) != 1 {
					t.Fatalf("want an OPT record with one EDE option, got %v", opt)
				}
				if ede, ok := opt.Option[0].(*dns.EDNS0_EDE); !ok || ede.InfoCode != dns.ExtendedErrorCodeProhibited {
					t.Errorf("EDE = %v, want Prohibited", opt.Option[0])
				}
			}
		})
	}
	if got := a.Stats().DNSQueries; got != uint64(len(tests)) {
		t.Errorf("DNSQueries = %d, want %d", got, len(tests))
	}
}

func TestDNSMalformed(t *testing.T) {
	a, log := newTestNetns(t, []string{"api.allowed.test"}, nil)
	if out := a.handleDNS([]byte{1, 2, 3}); out != nil {
		t.Errorf("answered a 3-byte packet: %x", out)
	}
	resp := new(dns.Msg)
	resp.SetQuestion("api.allowed.test.", dns.TypeA)
	resp.Response = true
	pkt, _ := resp.Pack()
	if out := a.handleDNS(pkt); out != nil {
		t.Errorf("answered a response")
	}
	garbage := []byte{0xbe, 0xef, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xff}
	out := a.handleDNS(garbage)
	m := new(dns.Msg)
	if err := m.Unpack(out); err != nil || m.Id != 0xbeef || m.Rcode != dns.RcodeFormatError {
		t.Errorf("garbage query: answer %v (err %v), want FORMERR with id 0xbeef", m, err)
	}
	two := new(dns.Msg)
	two.SetQuestion("api.allowed.test.", dns.TypeA)
	two.Question = append(two.Question, two.Question[0])
	pkt, _ = two.Pack()
	if err := m.Unpack(a.handleDNS(pkt)); err != nil || m.Rcode != dns.RcodeFormatError || len(m.Answer) != 0 {
		t.Errorf("two questions: %v (err %v), want FORMERR and no answer", m, err)
	}
	want := []Denial{{Proto: "dns", Reason: ReasonMalformed}, {Proto: "dns", Reason: ReasonMalformed}}
	if diff := cmp.Diff(want, log.take(), ignoreTime); diff != "" {
		t.Errorf("denials (-want +got):\n%s", diff)
	}
}

// FuzzHandleDNS checks the resolver never panics on any packet and never
// answers with an address for a name the policy does not cover.
func FuzzHandleDNS(f *testing.F) {
	for _, q := range []struct {
		name string
		typ  uint16
	}{{"api.allowed.test.", dns.TypeA}, {"evil.test.", dns.TypeTXT}, {"1.0.18.198.in-addr.arpa.", dns.TypePTR}, {"x.wild.test.", dns.TypeANY}} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.typ)
		pkt, _ := m.Pack()
		f.Add(pkt)
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		a, _ := newTestNetns(t, []string{"api.allowed.test", "*.wild.test"}, nil)
		out := a.handleDNS(pkt)
		if out == nil {
			return
		}
		resp := new(dns.Msg)
		if err := resp.Unpack(out); err != nil {
			t.Fatalf("resolver wrote an unparsable answer: %v", err)
		}
		for _, rr := range resp.Answer {
			if rr.Header().Rrtype == dns.TypeA {
				n := rr.Header().Name
				if !a.policy.AllowsName(n) && !isLocalhost(n) {
					t.Fatalf("A record for %q, which the policy does not allow", n)
				}
			}
		}
	})
}

func isLocalhost(n string) bool {
	c, ok := canonicalName(n)
	return ok && (c == "localhost" || len(c) > 10 && c[len(c)-10:] == ".localhost")
}

// TestLearnDNS: learning, a name the policy does not allow gets a
// synthetic address instead of a refusal (no DNS denial), and the
// connection to it is still refused, now with its port; Cortex's
// internal names are refused as before; without Learn nothing changes.
func TestLearnDNS(t *testing.T) {
	a, log := newTestNetns(t, []string{"api.example.com:443"}, nil)
	a.learn = true
	ask := func(name string) *dns.Msg {
		q := new(dns.Msg)
		q.SetQuestion(dns.Fqdn(name), dns.TypeA)
		return a.answer(q)
	}
	r := ask("other.example.org")
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("learning: a name not allowed got %s with %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	if ds := log.take(); len(ds) != 0 {
		t.Errorf("learning: the DNS answer was reported as a denial: %+v", ds)
	}
	if _, reason := a.permit("other.example.org", 8443); reason != ReasonNameNotAllowed {
		t.Errorf("learning: the connection was not refused (%q)", reason)
	}
	if r := ask("llm.cortex.internal"); r.Rcode != dns.RcodeNameError {
		t.Errorf("learning: an internal name not enabled got %s", dns.RcodeToString[r.Rcode])
	}
	b, _ := newTestNetns(t, []string{"api.example.com:443"}, nil)
	q := new(dns.Msg)
	q.SetQuestion("other.example.org.", dns.TypeA)
	if r := b.answer(q); r.Rcode != dns.RcodeNameError {
		t.Errorf("not learning: a name not allowed got %s", dns.RcodeToString[r.Rcode])
	}
}
