package config

import (
	"strings"
	"testing"
	"time"
)

func TestOpsSection(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
		check   func(*testing.T, *Config)
	}{
		{name: "defaults", in: "", check: func(t *testing.T, c *Config) {
			if c.Ops.CheckTimeout != 10*time.Second || c.Ops.HookTimeout != 10*time.Second || c.Ops.UpdateDeadline != 2*time.Minute || c.Ops.SystemdUnit != "cortexd.service" {
				t.Errorf("ops defaults: %+v", c.Ops)
			}
		}},
		{name: "set", in: "ops:\n  explain_alias: ops-explain\n  check_timeout: 2s\n  hook_timeout: 500ms\n  update_deadline: 30s\n  offline: true\negress:\n  resolver: 127.0.0.1:5353\n", check: func(t *testing.T, c *Config) {
			if c.Ops.ExplainAlias != "ops-explain" || c.Ops.CheckTimeout != 2*time.Second || c.Ops.HookTimeout != 500*time.Millisecond || !c.Ops.Offline || c.Egress.Resolver != "127.0.0.1:5353" {
				t.Errorf("ops: %+v, resolver %q", c.Ops, c.Egress.Resolver)
			}
		}},
		{name: "unknown field", in: "ops:\n  explain: x\n", wantErr: `config.yaml:2:3: ops.explain: unknown field; did you mean "explain_alias"?`},
		{name: "zero timeout", in: "ops:\n  check_timeout: 0s\n", wantErr: "config.yaml: ops.check_timeout: must be > 0"},
		{name: "short deadline", in: "ops:\n  update_deadline: 1s\n", wantErr: "ops.update_deadline: must be >= 5s"},
		{name: "bad resolver", in: "egress:\n  resolver: 10.0.0.2\n", wantErr: `egress.resolver: "10.0.0.2" is not host:port`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := check(strings.NewReader(tc.in), "config.yaml")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}
