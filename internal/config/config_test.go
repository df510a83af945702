package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
)

func TestDefaultsValidate(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
		check   func(*testing.T, *Config)
	}{
		{name: "empty gives defaults", in: "", check: func(t *testing.T, c *Config) {
			if c.Supervisor.KillGrace != 10*time.Second {
				t.Errorf("kill grace %v", c.Supervisor.KillGrace)
			}
		}},
		{name: "override", in: "version: \"1\"\nsupervisor:\n  kill_grace: 3s\negress:\n  hosts:\n    api.allowed.test: 127.0.0.1\n", check: func(t *testing.T, c *Config) {
			if c.Supervisor.KillGrace != 3*time.Second || c.Egress.Hosts["api.allowed.test"] != "127.0.0.1" {
				t.Errorf("got %+v", c)
			}
			if c.Logs.Segments != 4 {
				t.Errorf("default lost: %d", c.Logs.Segments)
			}
		}},
		{name: "unknown field", in: "version: \"1\"\nsuprvisor: {}\n",
			wantErr: `config.yaml:2:1: suprvisor: unknown field; did you mean "supervisor"?`},
		{name: "unknown nested field", in: "logs:\n  segments: 2\n  segmnt_size: 1Mi\n",
			wantErr: `config.yaml:3:3: logs.segmnt_size: unknown field; did you mean "segment_size"?`},
		{name: "unknown field without suggestion", in: "sandbox:\n  gpu: true\n",
			wantErr: `config.yaml:2:3: sandbox.gpu: unknown field; known fields: degraded, tmp_size`},
		{name: "bad duration", in: "supervisor:\n  kill_grace: ten\n",
			wantErr: `config.yaml:2:15: supervisor.kill_grace: "ten" is not a duration; write e.g. 10s or 500ms`},
		{name: "duplicate key", in: "logs:\n  segments: 2\n  segments: 3\n",
			wantErr: `config.yaml:3:3: logs.segments: duplicate key; first written at line 2; keep one of them`},
		{name: "no coercion", in: "sandbox:\n  degraded: \"yes\"\n",
			wantErr: `config.yaml:2:13: sandbox.degraded: expected true or false, found a string; write true or false without quotes`},
		{name: "syntax error line", in: "logs:\n  segments: 2\n segment_size: 1Mi\n",
			wantErr: `config.yaml:3: invalid YAML: did not find expected key`},
		{name: "all problems at once", in: "suprvisor: {}\nlogs: {segments: many}\n",
			wantErr: "config.yaml:1:1: suprvisor: unknown field; did you mean \"supervisor\"?\n" +
				`config.yaml:2:18: logs.segments: "many" is not a whole number; write an integer without quotes`},
		{name: "bad quantity", in: "logs:\n  segment_size: 2GB\n", wantErr: "logs.segment_size"},
		{name: "bad runtime", in: "runtimes:\n  ruby3: /usr/bin/ruby\n", wantErr: "runtimes.ruby3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(strings.NewReader(tc.in), "config.yaml")
			if err != nil && !errdefs.IsInvalidArgument(err) {
				t.Errorf("Parse error category %v, want invalid argument", errdefs.CategoryOf(err))
			}
			if err == nil {
				err = c.Validate()
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
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

func TestPaths(t *testing.T) {
	p := NewPaths("/tmp/x")
	if p.Socket != "/tmp/x/run/cortex/cortexd.sock" || p.ConfigFile != "/tmp/x/etc/cortex/config.yaml" {
		t.Fatalf("%+v", p)
	}
	if NewPaths("").LibDir != "/var/lib/cortex" {
		t.Fatal("FHS lib dir")
	}
	dir := t.TempDir()
	if err := NewPaths(dir).MkdirAll(); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err != nil {
		t.Fatal(err)
	}
}
