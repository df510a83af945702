package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/strictyaml"
)

// Config is the daemon's config.yaml.
type Config struct {
	Version    string            `yaml:"version"`
	Defaults   Defaults          `yaml:"defaults"`
	Runtimes   map[string]string `yaml:"runtimes"`
	Supervisor Supervisor        `yaml:"supervisor"`
	Logs       Logs              `yaml:"logs"`
	Sandbox    Sandbox           `yaml:"sandbox"`
	Egress     Egress            `yaml:"egress"`
	LLM        LLM               `yaml:"llm"`
	Bus        Bus               `yaml:"bus"`
	API        API               `yaml:"api"`
	Audit      Audit             `yaml:"audit"`
	Ops        Ops               `yaml:"ops"`

	// Source is the file the config was read from ("" for defaults).
	Source string `yaml:"-"`
}

// Defaults are the last step of manifest resolution.
type Defaults struct {
	Runtime       string    `yaml:"runtime"`
	Resources     Resources `yaml:"resources"`
	RestartPolicy string    `yaml:"restart_policy"`
	MaxRestarts   int       `yaml:"max_restarts"`
}

// Resources mirror the manifest's resources block.
type Resources struct {
	CPULimit  float64           `yaml:"cpu_limit"`
	MemLimit  manifest.Quantity `yaml:"mem_limit"`
	PidsLimit int64             `yaml:"pids_limit"`
}

// Supervisor tunes lifecycle handling. Durations, here and in every
// section, are written as Go durations (10s, 500ms, 2h) and decoded by
// strictyaml.
type Supervisor struct {
	KillGrace      time.Duration `yaml:"kill_grace"`
	BackoffInitial time.Duration `yaml:"backoff_initial"`
	BackoffMax     time.Duration `yaml:"backoff_max"`
}

// Logs tunes the log collector's storage. Sizes, here and in every
// section, are manifest.Quantity values (512Mi, 2Gi), parsed once while
// decoding.
type Logs struct {
	SegmentSize manifest.Quantity `yaml:"segment_size"`
	Segments    int               `yaml:"segments"` // kept per agent, oldest dropped
}

// Sandbox tunes agent isolation.
type Sandbox struct {
	// Degraded lets agents run when a wall the design requires is missing
	// from the kernel; cortex list and inspect then say so.
	Degraded bool `yaml:"degraded"`
	// TmpSize caps each agent's private /tmp.
	TmpSize manifest.Quantity `yaml:"tmp_size"`
}

// Egress configures the egress gateway.
type Egress struct {
	// Hosts pins names to addresses, bypassing DNS and the private-range
	// refusal. Only the daemon config can do this, never a manifest.
	Hosts map[string]string `yaml:"hosts"`
	// Resolver is the DNS server (host:port) the gateway resolves allowed
	// names with; "" uses the host's resolv.conf.
	Resolver string `yaml:"resolver"`
}

// Default returns the built-in configuration.
func Default() *Config {
	return &Config{
		Version: "1",
		Defaults: Defaults{
			Runtime:       "python3.11",
			Resources:     Resources{CPULimit: 1, MemLimit: 512 << 20, PidsLimit: 512},
			RestartPolicy: string(manifest.RestartNo),
			MaxRestarts:   3,
		},
		Runtimes: map[string]string{},
		Supervisor: Supervisor{
			KillGrace:      10 * time.Second,
			BackoffInitial: 200 * time.Millisecond,
			BackoffMax:     30 * time.Second,
		},
		Logs:    Logs{SegmentSize: 16 << 20, Segments: 4},
		Sandbox: Sandbox{TmpSize: 64 << 20},
		Egress:  Egress{Hosts: map[string]string{}},
		LLM:     DefaultLLM(),
		Bus:     DefaultBus(),
		API:     DefaultAPI(),
		Audit:   DefaultAudit(),
		Ops:     DefaultOps(),
	}
}

// Parse reads YAML over the defaults, strictly (internal/strictyaml): one
// document, no unknown fields or duplicate keys, no type coercion. Problems
// come back as strictyaml.Errors (category InvalidArgument), one line each:
// "config.yaml:2:1: suprvisor: unknown field; did you mean "supervisor"?".
// The config is returned even then (fields with problems keep their
// defaults), so Validate can still run on it. It has no side effects.
func Parse(r io.Reader, source string) (*Config, error) {
	c := Default()
	c.Source = source
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", source, err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return c, nil
	}
	return c, strictyaml.Decode(data, source, c)
}

// Load reads path and returns every problem of Parse and Validate, joined;
// a missing file gives the defaults.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		c := Default()
		return c, c.Validate()
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return check(f, path)
}

// check is Parse followed by Validate on whatever parsed.
func check(r io.Reader, source string) (*Config, error) {
	c, err := Parse(r, source)
	if c == nil {
		return nil, err
	}
	if verr := c.Validate(); verr != nil {
		err = errors.Join(err, verr)
	}
	return c, err
}

// Validate returns every problem, joined, one per line:
// "config.yaml: logs.segments: must be >= 1".
func (c *Config) Validate() error {
	var errs []error
	src := c.Source
	if src == "" {
		src = "config"
	}
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s: %s", src, field, fmt.Sprintf(format, args...)))
	}
	if c.Version != "1" {
		bad("version", "%q is not supported; use \"1\"", c.Version)
	}
	if _, err := c.DaemonDefaults(); err != nil {
		bad("defaults", "%v", err)
	}
	if c.Defaults.Resources.CPULimit <= 0 {
		bad("defaults.resources.cpu_limit", "must be > 0")
	}
	if c.Defaults.Resources.PidsLimit <= 0 {
		bad("defaults.resources.pids_limit", "must be > 0")
	}
	if c.Defaults.MaxRestarts < 0 {
		bad("defaults.max_restarts", "must be >= 0")
	}
	for name := range c.Runtimes {
		if !slices.Contains(manifest.Runtimes, name) {
			bad("runtimes."+name, "unknown runtime; use one of %s", strings.Join(manifest.Runtimes, ", "))
		}
	}
	if c.Logs.Segments < 1 {
		bad("logs.segments", "must be >= 1")
	}
	if c.Supervisor.KillGrace < 0 || c.Supervisor.BackoffInitial <= 0 || c.Supervisor.BackoffMax < c.Supervisor.BackoffInitial {
		bad("supervisor", "durations must be positive and backoff_max >= backoff_initial")
	}
	c.Bus.WithDefaults().validate(bad)
	c.LLM.validate(bad)
	c.API.validate(bad)
	c.Audit.validate(bad)
	c.Ops.validate(bad)
	validateResolver(c.Egress.Resolver, bad)
	return errors.Join(errs...)
}

// problem reports one invalid field; Validate prefixes the file.
type problem func(field, format string, args ...any)

// prefixed returns bad with prefix put before every field.
func prefixed(bad problem, prefix string) problem {
	return func(field, format string, args ...any) { bad(prefix+field, format, args...) }
}

// DaemonDefaults converts the defaults block for manifest.Resolve.
func (c *Config) DaemonDefaults() (manifest.DaemonDefaults, error) {
	rp := manifest.RestartPolicy(c.Defaults.RestartPolicy)
	switch rp {
	case manifest.RestartNo, manifest.RestartOnFailure, manifest.RestartAlways:
	default:
		return manifest.DaemonDefaults{}, fmt.Errorf("restart_policy: %q; use no, on-failure or always", rp)
	}
	cpu := c.Defaults.Resources.CPULimit
	if n := float64(runtime.NumCPU()); cpu > n {
		cpu = n
	}
	return manifest.DaemonDefaults{
		Runtime:       c.Defaults.Runtime,
		Limits:        manifest.Limits{CPU: cpu, Memory: c.Defaults.Resources.MemLimit, Pids: c.Defaults.Resources.PidsLimit},
		RestartPolicy: rp,
		MaxRestarts:   c.Defaults.MaxRestarts,
	}, nil
}
