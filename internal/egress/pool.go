package egress

import (
	"net/netip"
	"sync"
)

// SyntheticPrefix holds the addresses the resolver hands out (RFC 2544
// benchmarking space, never routed on the internet).
var SyntheticPrefix = netip.MustParsePrefix("198.18.0.0/15")

// defaultPoolSize caps the names one namespace can map. A wildcard grant
// lets an agent ask for unboundedly many names; past the cap it gets
// SERVFAIL rather than growing the daemon's memory.
const defaultPoolSize = 65536

// pool maps names to synthetic addresses and back, for one namespace.
// Addresses ending in .0 or .255 are skipped; some software mistreats them.
type pool struct {
	mu     sync.Mutex
	next   uint32 // offset from the prefix base of the next candidate
	max    int
	byName map[string]netip.Addr
	byAddr map[netip.Addr]string
}

func newPool(max int) *pool {
	if max <= 0 {
		max = defaultPoolSize
	}
	return &pool{next: 1, max: max, byName: map[string]netip.Addr{}, byAddr: map[netip.Addr]string{}}
}

// assign returns name's address, allocating one on first use. ok is false
// when the pool is full.
func (p *pool) assign(name string) (netip.Addr, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.byName[name]; ok {
		return a, true
	}
	if len(p.byName) >= p.max {
		return netip.Addr{}, false
	}
	size := uint32(1) << (32 - SyntheticPrefix.Bits())
	base := SyntheticPrefix.Addr().As4()
	b := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	for ; p.next < size; p.next++ {
		v := b + p.next
		if v&0xff == 0 || v&0xff == 0xff {
			continue
		}
		a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		if _, taken := p.byAddr[a]; taken {
			continue
		}
		p.next++
		p.byName[name] = a
		p.byAddr[a] = name
		return a, true
	}
	return netip.Addr{}, false
}

// restore installs a mapping carried over from an earlier Netns (a
// daemon restart), so addresses the agent has cached keep their meaning.
// Mappings outside the prefix or clashing with one already present are
// ignored.
func (p *pool) restore(name string, a netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !SyntheticPrefix.Contains(a) || len(p.byName) >= p.max {
		return
	}
	if _, ok := p.byName[name]; ok {
		return
	}
	if _, ok := p.byAddr[a]; ok {
		return
	}
	p.byName[name] = a
	p.byAddr[a] = name
}

// name returns the name a synthetic address stands for.
func (p *pool) name(a netip.Addr) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, ok := p.byAddr[a.Unmap()]
	return n, ok
}

// snapshot copies the mapping.
func (p *pool) snapshot() map[string]netip.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[string]netip.Addr, len(p.byName))
	for k, v := range p.byName {
		m[k] = v
	}
	return m
}
