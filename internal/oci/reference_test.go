package oci

import (
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/errdefs"
)

func TestParseReference(t *testing.T) {
	const dg = "sha256:47d1d3bebe4615515311d414a432ba667f77a6ff30d2005400b26fae01d75e9d"
	tests := []struct {
		name, in string
		want     Reference
		wantErr  string
	}{
		{"tag", "localhost:5000/swarm:v1", Reference{Registry: "localhost:5000", Repository: "swarm", Tag: "v1"}, ""},
		{"default tag", "registry.example.com/team/swarm", Reference{Registry: "registry.example.com", Repository: "team/swarm", Tag: "latest"}, ""},
		{"digest", "127.0.0.1:5000/swarm@" + dg, Reference{Registry: "127.0.0.1:5000", Repository: "swarm", Digest: dg}, ""},
		{"tag and digest: digest wins", "localhost:5000/swarm:v1@" + dg, Reference{Registry: "localhost:5000", Repository: "swarm", Digest: dg}, ""},
		{"oci scheme", "oci://localhost:5000/swarm:v2", Reference{Registry: "localhost:5000", Repository: "swarm", Tag: "v2"}, ""},
		{"ipv6", "[::1]:5000/swarm:v1", Reference{Registry: "[::1]:5000", Repository: "swarm", Tag: "v1"}, ""},
		{"no registry host", "team/swarm:v1", Reference{}, "does not start with a registry host"},
		{"no repository", "localhost:5000", Reference{}, "not a registry reference"},
		{"upper case repository", "localhost:5000/Swarm:v1", Reference{}, "not a registry reference"},
		{"bad digest", "localhost:5000/swarm@sha256:abc", Reference{}, "not a registry reference"},
		{"bad tag", "localhost:5000/swarm:-v1", Reference{}, "not a registry reference"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseReference(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("ParseReference(%q) = %+v, %v; want invalid argument containing %q", tc.in, got, err, tc.wantErr)
				}
				if errdefs.HintOf(err) == "" {
					t.Errorf("error without a hint: %v", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseReference(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestLooksLikeReference(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"localhost:5000/swarm:v1", true},
		{"localhost/swarm", true},
		{"registry.example.com/team/swarm", true},
		{"127.0.0.1:5000/swarm@sha256:47d1d3bebe4615515311d414a432ba667f77a6ff30d2005400b26fae01d75e9d", true},
		{"oci://anything", true},
		{"examples/swarm", false},     // a relative path: no host-like first element
		{"./localhost:5000/x", false}, // explicit relative path
		{"/srv/reg.example.com/x", false},
		{"my.cortex", false}, // no slash
		{"cortex.yaml", false},
		{"dir.v2/cortex.yaml", true}, // host-like and parses: callers check the disk first
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := LooksLikeReference(tc.in); got != tc.want {
				t.Errorf("LooksLikeReference(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestPlainHTTPHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost:5000": true, "localhost": true, "127.0.0.1:5000": true, "[::1]:5000": true,
		"127.0.0.2:5000": false, "registry.example.com": false, "10.0.0.5:5000": false, "localhost.example.com:5000": false,
	} {
		if got := PlainHTTPHost(host); got != want {
			t.Errorf("PlainHTTPHost(%q) = %v, want %v", host, got, want)
		}
	}
}

// FuzzParseReference: anything LooksLikeReference accepts without the
// scheme parses, and a parsed reference round-trips through String.
func FuzzParseReference(f *testing.F) {
	for _, s := range []string{"localhost:5000/swarm:v1", "a.b/c@sha256:47d1d3bebe4615515311d414a432ba667f77a6ff30d2005400b26fae01d75e9d", "x/y", "[::1]:1/a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := ParseReference(s)
		if LooksLikeReference(s) && !strings.HasPrefix(s, Scheme) && err != nil {
			t.Fatalf("LooksLikeReference(%q) but ParseReference: %v", s, err)
		}
		if err != nil {
			return
		}
		again, err := ParseReference(ref.String())
		if err != nil || again != ref {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, ref, ref.String(), again, err)
		}
	})
}
