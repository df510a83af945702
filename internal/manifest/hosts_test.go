package manifest

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseHostRule(t *testing.T) {
	tests := []struct {
		in      string
		want    HostRule
		wantErr string
	}{
		{in: "api.example.com", want: HostRule{Host: "api.example.com"}},
		{in: "ice-kernel", want: HostRule{Host: "ice-kernel"}},
		{in: "*.example.org", want: HostRule{Host: "example.org", Wildcard: true}},
		{in: "db.example.com:5432", want: HostRule{Host: "db.example.com", Port: 5432}},
		{in: "*.svc.example.org:8443", want: HostRule{Host: "svc.example.org", Wildcard: true, Port: 8443}},
		{in: "xn--bcher-kva.example", want: HostRule{Host: "xn--bcher-kva.example"}},
		{in: "a1.b2", want: HostRule{Host: "a1.b2"}},
		{in: "127.0.0.1", wantErr: "is an IP address"},
		{in: "[::1]", wantErr: "is an IP address"},
		{in: "fe80::1%eth0", wantErr: "is an IP address"},
		{in: "2130706433", wantErr: "looks like an IP address"},
		{in: "0x7f.1", wantErr: "looks like an IP address"},
		{in: "example.0x1f", wantErr: "looks like an IP address"},
		{in: "ftp://files.example.com", wantErr: "write the host name only: files.example.com"},
		{in: "Example.COM:443", wantErr: `write "example.com:443"`},
		{in: "*.example.org.", wantErr: `write "*.example.org"`},
		{in: "x:", wantErr: "is not a number from 1 to 65535"},
		{in: strings.Repeat("a", 64) + ".com", wantErr: "longer than 63"},
		{in: strings.Repeat("abcdefghi.", 26) + "com", wantErr: "longer than 253"},
		{in: "a\tb", wantErr: "spaces or control characters"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseHostRule(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), "; ") {
					t.Errorf("no fix in %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if got.String() != tc.in {
				t.Errorf("String() = %q", got.String())
			}
		})
	}
}

func TestHostRuleMatches(t *testing.T) {
	tests := []struct {
		rule string
		host string
		port int
		want bool
	}{
		{"api.example.com", "api.example.com", 443, true},
		{"api.example.com", "API.Example.com.", 80, true},
		{"api.example.com", "x.api.example.com", 443, false},
		{"api.example.com", "example.com", 443, false},
		{"*.example.org", "a.example.org", 443, true},
		{"*.example.org", "a.b.example.org", 443, true},
		{"*.example.org", "example.org", 443, false},
		{"*.example.org", "badexample.org", 443, false},
		{"db.example.com:5432", "db.example.com", 5432, true},
		{"db.example.com:5432", "db.example.com", 443, false},
		{"db.example.com:5432", "db.example.com", 0, false},
		{"ice-kernel", "ice-kernel", 8000, true},
	}
	for _, tc := range tests {
		t.Run(tc.rule+"/"+tc.host, func(t *testing.T) {
			r, err := ParseHostRule(tc.rule)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Matches(tc.host, tc.port); got != tc.want {
				t.Errorf("Matches(%q, %d) = %v", tc.host, tc.port, got)
			}
		})
	}
}

func TestChannels(t *testing.T) {
	tests := []struct {
		pattern, channel string
		want             bool
	}{
		{"results", "results", true},
		{"results", "results.a", false},
		{"results.*", "results.a", true},
		{"results.*", "results.a.b", true},
		{"results.*", "results", false},
		{"results.*", "resultsx.a", false},
		{"*", "anything", true},
		{"*", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.pattern+"/"+tc.channel, func(t *testing.T) {
			if got := ChannelMatches(tc.pattern, tc.channel); got != tc.want {
				t.Errorf("ChannelMatches = %v", got)
			}
		})
	}
	if !ChannelAllowed(nil, "x") || ChannelAllowed([]string{}, "x") || !ChannelAllowed([]string{"a", "x"}, "x") {
		t.Error("ChannelAllowed: nil allows all, empty none")
	}
	for _, ok := range []string{"a", "a.b-c_d", "*", "a.*"} {
		if err := checkChannel(ok, true); err != nil {
			t.Errorf("checkChannel(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "a.", "a..b", "a*", "*.a", "a.*.b", "a b", strings.Repeat("a", 129)} {
		if err := checkChannel(bad, true); err == nil {
			t.Errorf("checkChannel(%q) accepted", bad)
		}
	}
	if err := checkChannel("a.*", false); err == nil {
		t.Error("durable wildcard accepted")
	}
}

func TestCheckBroker(t *testing.T) {
	for _, ok := range []string{"redis://h:6379", "rediss://user:pw@h:6380/0", "nats://n1:4222"} {
		if err := checkBroker(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"h:6379", "redis://", "http://h", "redis://h:99999", "redis://:s3cret@"} {
		err := checkBroker(bad)
		if err == nil {
			t.Errorf("%s accepted", bad)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("password leaked: %v", err)
		}
	}
}
