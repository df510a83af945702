package egress

import "net/netip"

// blockedPrefixes are ranges the gateway never dials (unless Config.Hosts
// pins a name there). IPv4-mapped, IPv4-compatible, NAT64 and 6to4 IPv6
// addresses are checked by the IPv4 address they embed; see blockedAddr.
var blockedPrefixes = []struct {
	prefix netip.Prefix
	why    string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "protocol assignments"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking (synthetic pool)"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"}, // includes 255.255.255.255
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("100::/64"), "discard"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local NAT64"},
	{netip.MustParsePrefix("2001::/23"), "protocol assignments"}, // includes Teredo 2001::/32
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("3fff::/20"), "documentation"},
	{netip.MustParsePrefix("fc00::/7"), "unique local (private)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

var (
	nat64Prefix  = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour    = netip.MustParsePrefix("2002::/16")
	v4Compatible = netip.MustParsePrefix("::/96")
)

// blockedAddr reports why the gateway must not dial a, or "" when a is a
// public unicast address. Zoned addresses are always blocked.
func blockedAddr(a netip.Addr) string {
	if !a.IsValid() {
		return "invalid"
	}
	if a.Zone() != "" {
		return "zoned"
	}
	a = a.Unmap()
	if a.Is6() {
		switch {
		case nat64Prefix.Contains(a):
			b := a.As16()
			if why := blockedAddr(netip.AddrFrom4([4]byte(b[12:16]))); why != "" {
				return "NAT64 of " + why
			}
		case sixToFour.Contains(a):
			b := a.As16()
			if why := blockedAddr(netip.AddrFrom4([4]byte(b[2:6]))); why != "" {
				return "6to4 of " + why
			}
		case v4Compatible.Contains(a) && a != netip.IPv6Unspecified() && a != netip.IPv6Loopback():
			return "IPv4-compatible"
		}
	}
	for _, b := range blockedPrefixes {
		if b.prefix.Contains(a) {
			return b.why
		}
	}
	return ""
}
