package egress

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

const (
	// dnsTTL is the TTL of synthetic answers. A mapping never changes while
	// the namespace lives, so any TTL is safe; a short one limits what an
	// agent caches across a restart without Restore.
	dnsTTL = 60
	// dnsTCPIdle closes idle DNS-over-TCP connections.
	dnsTCPIdle = 10 * time.Second
	// dnsUDPSize is the EDNS buffer size the resolver advertises.
	dnsUDPSize = 1232
)

// handleDNS answers one wire-format query. It returns nil for packets that
// deserve no answer (responses, garbage shorter than a header).
func (a *Netns) handleDNS(pkt []byte) []byte {
	req := new(dns.Msg)
	if err := req.Unpack(pkt); err != nil {
		if len(pkt) < 12 || pkt[2]&0x80 != 0 {
			return nil
		}
		a.dnsQueries.Add(1)
		a.deny(Denial{Proto: "dns"}, ReasonMalformed)
		resp := new(dns.Msg)
		resp.Id = binary.BigEndian.Uint16(pkt)
		resp.Response = true
		resp.Rcode = dns.RcodeFormatError
		out, _ := resp.Pack()
		return out
	}
	if req.Response {
		return nil
	}
	a.dnsQueries.Add(1)
	resp := a.answer(req)
	out, err := resp.Pack()
	if err != nil {
		return nil
	}
	return out
}

// answer decides one query; see the package comment for the rules.
func (a *Netns) answer(req *dns.Msg) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.RecursionAvailable = true
	opt := req.IsEdns0()
	if opt != nil {
		resp.SetEdns0(dnsUDPSize, false)
	}
	fail := func(rcode int, d Denial, reason Reason) *dns.Msg {
		resp.Rcode = rcode
		a.deny(d, reason)
		if o := resp.IsEdns0(); o != nil {
			code := dns.ExtendedErrorCodeProhibited
			if reason == ReasonMalformed {
				code = dns.ExtendedErrorCodeOther
			}
			o.Option = append(o.Option, &dns.EDNS0_EDE{InfoCode: code, ExtraText: "cortex egress: " + string(reason)})
		}
		return resp
	}
	if req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 || (opt != nil && opt.Version() != 0) {
		resp.Question = req.Question
		if len(req.Question) > 1 {
			resp.Question = req.Question[:1]
		}
		rcode := dns.RcodeFormatError
		if req.Opcode != dns.OpcodeQuery {
			rcode = dns.RcodeNotImplemented
		} else if opt != nil && opt.Version() != 0 {
			rcode = dns.RcodeBadVers
		}
		return fail(rcode, Denial{Proto: "dns"}, ReasonMalformed)
	}
	q := req.Question[0]
	asked := strings.TrimSuffix(q.Name, ".")
	d := Denial{Proto: "dns", Name: asked}
	if q.Qclass != dns.ClassINET {
		return fail(dns.RcodeRefused, d, ReasonNameNotAllowed)
	}
	name, ok := canonicalName(asked)

	// The agent's own loopback names, never a refusal.
	if ok && (name == "localhost" || strings.HasSuffix(name, ".localhost")) {
		switch q.Qtype {
		case dns.TypeA, dns.TypeANY:
			resp.Answer = append(resp.Answer, &dns.A{Hdr: hdr(q, dns.TypeA), A: net.IPv4(127, 0, 0, 1)})
		case dns.TypeAAAA:
			resp.Answer = append(resp.Answer, &dns.AAAA{Hdr: hdr(q, dns.TypeAAAA), AAAA: net.IPv6loopback})
		}
		return resp
	}
	if q.Qtype == dns.TypePTR {
		if ip, isRev := reverseAddr(asked); isRev {
			target := ""
			if ip.Unmap().IsLoopback() {
				target = "localhost."
			} else if n, found := a.pool.name(ip); found {
				target = dns.Fqdn(n)
			}
			if target == "" {
				return fail(dns.RcodeNameError, d, ReasonNameNotAllowed)
			}
			resp.Answer = append(resp.Answer, &dns.PTR{Hdr: hdr(q, dns.TypePTR), Ptr: target})
			return resp
		}
	}
	if !ok || !a.nameAllowed(name) && !a.learnName(name) {
		return fail(dns.RcodeNameError, d, ReasonNameNotAllowed)
	}
	switch q.Qtype {
	case dns.TypeA, dns.TypeANY:
		ip, assigned := a.pool.assign(name)
		if !assigned {
			return fail(dns.RcodeServerFailure, d, ReasonTooManyNames)
		}
		resp.Answer = append(resp.Answer, &dns.A{Hdr: hdr(q, dns.TypeA), A: net.IP(ip.AsSlice())})
	default:
		// NODATA: AAAA (clients fall back to IPv4), HTTPS/SVCB, TXT, MX...
	}
	return resp
}

func hdr(q dns.Question, typ uint16) dns.RR_Header {
	return dns.RR_Header{Name: q.Name, Rrtype: typ, Class: dns.ClassINET, Ttl: dnsTTL}
}

// reverseAddr parses a full in-addr.arpa or ip6.arpa name.
func reverseAddr(name string) (netip.Addr, bool) {
	name = strings.ToLower(name)
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		parts := strings.Split(rest, ".")
		if len(parts) != 4 {
			return netip.Addr{}, false
		}
		var b [4]byte
		for i, p := range parts {
			v, err := strconv.ParseUint(p, 10, 8)
			if err != nil {
				return netip.Addr{}, false
			}
			b[3-i] = byte(v)
		}
		return netip.AddrFrom4(b), true
	}
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		parts := strings.Split(rest, ".")
		if len(parts) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, p := range parts {
			v, err := strconv.ParseUint(p, 16, 4)
			if err != nil || len(p) != 1 {
				return netip.Addr{}, false
			}
			j := 31 - i
			b[j/2] |= byte(v) << (4 * (1 - j%2))
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

// serveDNSUDP answers queries on pc until it is closed.
func (a *Netns) serveDNSUDP(pc *net.UDPConn) {
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || a.isClosed() {
				return
			}
			continue
		}
		out := a.handleDNS(buf[:n])
		if out == nil {
			continue
		}
		if len(out) > 512 {
			// Our answers are a few dozen bytes; this only guards odd queries.
			if m := new(dns.Msg); m.Unpack(out) == nil && m.IsEdns0() == nil {
				m.Truncate(512)
				if o, err := m.Pack(); err == nil {
					out = o
				}
			}
		}
		pc.WriteToUDPAddrPort(out, from)
	}
}

// handleDNSTCP answers length-prefixed queries on one TCP connection until
// the client closes it or stays idle for dnsTCPIdle.
func (a *Netns) handleDNSTCP(_ context.Context, c net.Conn) {
	var lenBuf [2]byte
	for {
		c.SetReadDeadline(time.Now().Add(dnsTCPIdle))
		if _, err := io.ReadFull(c, lenBuf[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(lenBuf[:]))
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		out := a.handleDNS(msg)
		if out == nil {
			continue
		}
		frame := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(out)), uint16(len(out)))
		c.SetWriteDeadline(time.Now().Add(dnsTCPIdle))
		if _, err := c.Write(append(frame, out...)); err != nil {
			return
		}
	}
}
