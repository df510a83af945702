package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/errdefs"
)

func TestParseClientConfig(t *testing.T) {
	good := `version: "1"
current_context: prod
contexts:
  prod:
    host: https://cortex.example.com:7443
    ca: prod-ca.pem
    api_key_file: /secrets/prod.key
  local:
    host: unix:///run/cortex/cortexd.sock
`
	c, err := ParseClientConfig([]byte(good), "/home/u/.config/cortex/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Contexts["prod"].CA != "/home/u/.config/cortex/prod-ca.pem" || c.Contexts["prod"].APIKeyFile != "/secrets/prod.key" {
		t.Errorf("paths: %+v", c.Contexts["prod"])
	}
	for _, tc := range []struct{ name, in, want string }{
		{"unknown field", "contexts:\n  a:\n    hots: https://x:1\n", `config.yaml:3:5: contexts.a.hots: unknown field; did you mean "host"?`},
		{"plain http", "contexts:\n  a:\n    host: http://x:1\n", `config.yaml:3:5: contexts.a.host: "http://x:1": the API is served over TLS only; use https://`},
		{"current context missing", "current_context: prod\ncontexts:\n  prd:\n    host: https://x:1\n", `config.yaml:1:1: current_context: no context named "prod"`},
		{"cert without key", "contexts:\n  a:\n    host: https://x:1\n    cert: c.pem\n", "config.yaml:3:5: contexts.a: cert and key go together"},
		{"both keys", "contexts:\n  a:\n    host: https://x:1\n    api_key: k\n    api_key_file: f\n", "contexts.a: api_key and api_key_file are both set"},
		{"version", "version: \"2\"\n", `config.yaml:1:1: version: "2" is not supported; use "1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseClientConfig([]byte(tc.in), "config.yaml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("category %v", errdefs.CategoryOf(err))
			}
		})
	}
}

func TestEndpoint(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(filepath.Join(dir, "k"), []byte("cortex_fromfile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, []byte("current_context: prod\ncontexts:\n  prod:\n    host: https://h:7443\n    ca: ca.pem\n    api_key_file: k\n  other:\n    host: https://o:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  Env
		want Endpoint
		err  string
	}{
		{"local default", Env{Root: "/r"}, Endpoint{Socket: "/r/run/cortex/cortexd.sock", Default: true}, ""},
		{"no config file", Env{Root: "/r", ClientConfig: filepath.Join(dir, "none.yaml")}, Endpoint{Socket: "/r/run/cortex/cortexd.sock", Default: true}, ""},
		{"current context", Env{ClientConfig: cfgPath}, Endpoint{URL: "https://h:7443", CA: filepath.Join(dir, "ca.pem"), APIKey: "cortex_fromfile", Context: "prod"}, ""},
		{"CORTEX_CONTEXT", Env{ClientConfig: cfgPath, Context: "other"}, Endpoint{URL: "https://o:1", Context: "other"}, ""},
		{"env overrides", Env{ClientConfig: cfgPath, APIKey: "cortex_env", CA: "/ca"}, Endpoint{URL: "https://h:7443", CA: "/ca", APIKey: "cortex_env", Context: "prod"}, ""},
		{"CORTEX_HOST wins", Env{ClientConfig: cfgPath, Host: "https://x:9/", APIKey: "k"}, Endpoint{URL: "https://x:9", APIKey: "k"}, ""},
		{"unix host", Env{Host: "unix:///s.sock"}, Endpoint{Socket: "/s.sock"}, ""},
		{"bad host", Env{Host: "x:1"}, Endpoint{}, "CORTEX_HOST"},
		{"unknown context", Env{ClientConfig: cfgPath, Context: "nope"}, Endpoint{}, `no context named "nope"`},
		{"cert without key", Env{Host: "https://x:1", Cert: "c"}, Endpoint{}, "needs its key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.env.Endpoint()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestAPIConfig(t *testing.T) {
	c, err := Parse(strings.NewReader(`api:
  listen: "127.0.0.1:7443"
  local_roles:
    - {group: ops, role: operator, projects: ["ci-*"]}
  rate_limits:
    viewer: {rate: 5, burst: 10}
audit:
  checkpoint_interval: 1s
`), "config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.API.RateLimits.Viewer.Rate != 5 || c.API.RateLimits.Admin.Rate != 200 || c.Audit.SegmentSize != 16<<20 {
		t.Errorf("api %+v audit %+v", c.API, c.Audit)
	}
	c, _ = Parse(strings.NewReader(`api:
  listen: "7443"
  local_roles:
    - {user: a, group: b, role: boss, projects: ["Prod*", "a*b"]}
  rate_limits:
    admin: {rate: 1, burst: 0}
`), "config.yaml")
	err = c.Validate()
	for _, want := range []string{"api.listen", "api.local_roles[0]: set exactly one", "api.local_roles[0].role", "projects[0]", "projects[1]", "api.rate_limits.admin"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validation lacks %q: %v", want, err)
		}
	}
}
