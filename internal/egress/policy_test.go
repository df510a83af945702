package egress

import (
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/google/go-cmp/cmp"
)

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		name    string
		entries []string
		want    []Rule
		wantErr string // substring; "" means success
	}{
		{name: "empty", entries: nil, want: nil},
		{name: "exact", entries: []string{"api.example.com"}, want: []Rule{{Name: "api.example.com"}}},
		{name: "case and trailing dot", entries: []string{"API.Example.COM."}, want: []Rule{{Name: "api.example.com"}}},
		{name: "wildcard", entries: []string{"*.example.org"}, want: []Rule{{Name: "example.org", Wildcard: true}}},
		{name: "single label", entries: []string{"ice-kernel"}, want: []Rule{{Name: "ice-kernel"}}},
		{name: "port", entries: []string{"db.example.com:5432"}, want: []Rule{{Name: "db.example.com", Port: 5432}}},
		{name: "wildcard port", entries: []string{"*.example.org:443"}, want: []Rule{{Name: "example.org", Wildcard: true, Port: 443}}},
		{name: "underscore", entries: []string{"my_service.internal.example"}, want: []Rule{{Name: "my_service.internal.example"}}},
		{
			name:    "sorted and deduplicated",
			entries: []string{"b.example.com", "a.example.com:443", "a.example.com", "b.example.com", "*.a.example.com"},
			want:    []Rule{{Name: "a.example.com"}, {Name: "a.example.com", Port: 443}, {Name: "a.example.com", Wildcard: true}, {Name: "b.example.com"}},
		},
		{name: "url", entries: []string{"https://api.example.com"}, wantErr: "not a URL"},
		{name: "path", entries: []string{"api.example.com/v1"}, wantErr: "without path"},
		{name: "ipv4", entries: []string{"93.184.216.34"}, wantErr: "literal IP"},
		{name: "ipv4 port", entries: []string{"93.184.216.34:443"}, wantErr: "literal IP"},
		{name: "ipv6", entries: []string{"2001:db8::1"}, wantErr: "literal IP"},
		{name: "ipv6 bracket port", entries: []string{"[2001:db8::1]:443"}, wantErr: "literal IP"},
		{name: "short ipv4", entries: []string{"10.1"}, wantErr: "looks like an IP"},
		{name: "hex ipv4", entries: []string{"0x7f000001"}, wantErr: "looks like an IP"},
		{name: "star", entries: []string{"*"}, wantErr: "every name"},
		{name: "wildcard tld", entries: []string{"*.com"}, wantErr: "too broad"},
		{name: "inner wildcard", entries: []string{"api.*.example.com"}, wantErr: "not allowed in a host name"},
		{name: "localhost", entries: []string{"localhost"}, wantErr: "loopback"},
		{name: "internal", entries: []string{"llm.cortex.internal"}, wantErr: "enabled by the daemon"},
		{name: "internal wildcard", entries: []string{"*.cortex.internal"}, wantErr: "enabled by the daemon"},
		{name: "empty entry", entries: []string{""}, wantErr: "empty"},
		{name: "port zero", entries: []string{"a.example.com:0"}, wantErr: "out of range"},
		{name: "port too big", entries: []string{"a.example.com:65536"}, wantErr: "out of range"},
		{name: "port not number", entries: []string{"a.example.com:https"}, wantErr: "not a number"},
		{name: "empty label", entries: []string{"a..example.com"}, wantErr: "empty label"},
		{name: "hyphen edge", entries: []string{"-a.example.com"}, wantErr: "starts or ends"},
		{name: "long label", entries: []string{strings.Repeat("a", 64) + ".com"}, wantErr: "longer than 63"},
		{name: "space", entries: []string{"a.example.com b.example.com"}, wantErr: "white space"},
		{name: "userinfo", entries: []string{"user@a.example.com"}, wantErr: "without path"},
		{name: "all problems reported", entries: []string{"ok.example.com", "*", "1.2.3.4"}, wantErr: "network.access[2]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePolicy(tc.entries)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParsePolicy(%q) error = %v, want one containing %q", tc.entries, err, tc.wantErr)
				}
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("error category = %v, want invalid argument", errdefs.CategoryOf(err))
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePolicy(%q): %v", tc.entries, err)
			}
			if diff := cmp.Diff(tc.want, p.Rules); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPolicyAllows(t *testing.T) {
	p, err := ParsePolicy([]string{"api.example.com", "*.example.org", "ice-kernel", "db.example.com:5432", "db.example.com:5433"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		host      string
		port      int
		allows    bool
		allowName bool
	}{
		{"exact any port", "api.example.com", 8443, true, true},
		{"exact case", "API.EXAMPLE.COM.", 443, true, true},
		{"exact no subdomain", "x.api.example.com", 443, false, false},
		{"wildcard one level", "a.example.org", 443, true, true},
		{"wildcard deep", "a.b.example.org", 80, true, true},
		{"wildcard not apex", "example.org", 443, false, false},
		{"wildcard suffix trick", "badexample.org", 443, false, false},
		{"single label", "ice-kernel", 8000, true, true},
		{"single label with suffix", "ice-kernel.example.com", 8000, false, false},
		{"narrowed port", "db.example.com", 5432, true, true},
		{"narrowed second port", "db.example.com", 5433, true, true},
		{"narrowed other port", "db.example.com", 443, false, true},
		{"port zero", "api.example.com", 0, false, true},
		{"port too big", "api.example.com", 70000, false, true},
		{"unlisted", "evil.example.net", 443, false, false},
		{"garbage", "api.example.com\x00", 443, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.Allows(tc.host, tc.port); got != tc.allows {
				t.Errorf("Allows(%q, %d) = %v, want %v", tc.host, tc.port, got, tc.allows)
			}
			if got := p.AllowsName(tc.host); got != tc.allowName {
				t.Errorf("AllowsName(%q) = %v, want %v", tc.host, got, tc.allowName)
			}
		})
	}
	if (Policy{}).Allows("api.example.com", 443) || !(Policy{}).Empty() {
		t.Error("the zero Policy must allow nothing")
	}
}

// FuzzParsePolicy checks ParsePolicy never panics, that what it accepts
// prints back to entries that parse to the same rules, and that an accepted
// rule allows its own name.
func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{"api.example.com", "*.example.org:443", "ice-kernel", "db.example.com:5432", "1.2.3.4", "[::1]:80", "*.", ":", "a:b:c", "*.*.x.y", "xn--bcher-kva.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, entry string) {
		p, err := ParsePolicy([]string{entry})
		if err != nil {
			return
		}
		var back []string
		for _, r := range p.Rules {
			back = append(back, r.String())
			host := r.Name
			if r.Wildcard {
				host = "x." + host
			}
			port := r.Port
			if port == 0 {
				port = 443
			}
			if !p.Allows(host, port) {
				t.Errorf("rule %v does not allow %s:%d", r, host, port)
			}
		}
		q, err := ParsePolicy(back)
		if err != nil {
			t.Fatalf("re-parse %q: %v", back, err)
		}
		if diff := cmp.Diff(p, q); diff != "" {
			t.Errorf("round trip of %q (-first +second):\n%s", entry, diff)
		}
	})
}
