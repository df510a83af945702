package egress

import (
	"net/netip"
	"testing"
)

func TestBlockedAddr(t *testing.T) {
	tests := []struct {
		addr    string
		blocked bool
	}{
		{"93.184.216.34", false},
		{"1.1.1.1", false},
		{"2606:4700:4700::1111", false},
		{"127.0.0.1", true},
		{"127.255.0.9", true},
		{"10.0.0.5", true},
		{"172.16.0.1", true},
		{"172.31.255.255", true},
		{"172.32.0.1", false},
		{"192.168.1.1", true},
		{"100.64.0.1", true},
		{"169.254.169.254", true},
		{"0.0.0.0", true},
		{"255.255.255.255", true},
		{"224.0.0.1", true},
		{"198.18.0.5", true},
		{"::", true},
		{"::1", true},
		{"fe80::1", true},
		{"fd00::1", true},
		{"ff02::1", true},
		{"::ffff:127.0.0.1", true},
		{"::ffff:169.254.169.254", true},
		{"::ffff:93.184.216.34", false},
		{"::127.0.0.1", true},         // IPv4-compatible
		{"64:ff9b::a9fe:a9fe", true},  // NAT64 of 169.254.169.254
		{"64:ff9b::5db8:d822", false}, // NAT64 of 93.184.216.34
		{"2002:7f00:1::1", true},      // 6to4 of 127.0.0.1
		{"2002:5db8:d822::1", false},  // 6to4 of 93.184.216.34
		{"2001:0:4136:e378::1", true}, // Teredo
		{"2001:db8::1", true},         // documentation
		{"fe80::1%eth0", true},        // zoned
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			a, err := netip.ParseAddr(tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			why := blockedAddr(a)
			if (why != "") != tc.blocked {
				t.Errorf("blockedAddr(%s) = %q, want blocked=%v", tc.addr, why, tc.blocked)
			}
		})
	}
}
