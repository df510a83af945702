package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
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
			if c.Supervisor.KillGrace.D() != 10*time.Second {
				t.Errorf("kill grace %v", c.Supervisor.KillGrace.D())
			}
		}},
		{name: "override", in: "version: \"1\"\nsupervisor:\n  kill_grace: 3s\negress:\n  hosts:\n    api.allowed.test: 127.0.0.1\n", check: func(t *testing.T, c *Config) {
			if c.Supervisor.KillGrace.D() != 3*time.Second || c.Egress.Hosts["api.allowed.test"] != "127.0.0.1" {
				t.Errorf("got %+v", c)
			}
			if c.Logs.Segments != 4 {
				t.Errorf("default lost: %d", c.Logs.Segments)
			}
		}},
		{name: "unknown field", in: "version: \"1\"\nsuprvisor: {}\n", wantErr: "line 2"},
		{name: "bad duration", in: "supervisor:\n  kill_grace: ten\n", wantErr: "not a duration"},
		{name: "bad quantity", in: "logs:\n  segment_size: 2GB\n", wantErr: "logs.segment_size"},
		{name: "bad runtime", in: "runtimes:\n  ruby3: /usr/bin/ruby\n", wantErr: "runtimes.ruby3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(strings.NewReader(tc.in), "config.yaml")
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
