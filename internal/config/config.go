package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/cortexrt/cortex/internal/bus"
	"github.com/cortexrt/cortex/internal/llm"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/strictyaml"
	"go.yaml.in/yaml/v3"
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
	LLM        llm.Config        `yaml:"llm"`
	Bus        bus.Config        `yaml:"bus"`

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
	CPULimit  float64 `yaml:"cpu_limit"`
	MemLimit  string  `yaml:"mem_limit"`
	PidsLimit int64   `yaml:"pids_limit"`
}

// Supervisor tunes lifecycle handling.
type Supervisor struct {
	KillGrace      Duration `yaml:"kill_grace"`
	BackoffInitial Duration `yaml:"backoff_initial"`
	BackoffMax     Duration `yaml:"backoff_max"`
}

// Logs tunes the log collector's storage.
type Logs struct {
	SegmentSize string `yaml:"segment_size"` // a quantity
	Segments    int    `yaml:"segments"`     // kept per agent, oldest dropped
}

// Sandbox tunes agent isolation.
type Sandbox struct {
	// Degraded lets agents run when a wall the design requires is missing
	// from the kernel; cortex list and inspect then say so.
	Degraded bool `yaml:"degraded"`
	// TmpSize caps each agent's private /tmp.
	TmpSize string `yaml:"tmp_size"`
}

// Egress configures the egress gateway.
type Egress struct {
	// Hosts pins names to addresses, bypassing DNS and the private-range
	// refusal. Only the daemon config can do this, never a manifest.
	Hosts map[string]string `yaml:"hosts"`
}

// Duration is a time.Duration written as "10s".
type Duration time.Duration

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("%q is not a duration; write e.g. 10s or 500ms", n.Value)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Default returns the built-in configuration.
func Default() *Config {
	return &Config{
		Version: "1",
		Defaults: Defaults{
			Runtime:       "python3.11",
			Resources:     Resources{CPULimit: 1, MemLimit: "512Mi", PidsLimit: 512},
			RestartPolicy: string(manifest.RestartNo),
			MaxRestarts:   3,
		},
		Runtimes: map[string]string{},
		Supervisor: Supervisor{
			KillGrace:      Duration(10 * time.Second),
			BackoffInitial: Duration(200 * time.Millisecond),
			BackoffMax:     Duration(30 * time.Second),
		},
		Logs:    Logs{SegmentSize: "16Mi", Segments: 4},
		Sandbox: Sandbox{TmpSize: "64Mi"},
		Egress:  Egress{Hosts: map[string]string{}},
		LLM:     llm.DefaultConfig(),
		Bus:     bus.DefaultConfig(),
	}
}

// Parse reads YAML over the defaults, strictly (internal/strictyaml): one
// document, no unknown fields or duplicate keys, no type coercion. Problems
// come back as strictyaml.Errors (category InvalidArgument), one line each:
// "config.yaml:2:1: suprvisor: unknown field; did you mean "supervisor"?".
// It has no side effects; call Validate next.
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
	if err := strictyaml.Decode(data, source, c); err != nil {
		return nil, err
	}
	return c, nil
}

// Load reads path; a missing file gives the defaults.
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
	c, err := Parse(f, path)
	if err != nil {
		return nil, err
	}
	return c, c.Validate()
}

// Validate returns every problem, joined.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		src := c.Source
		if src == "" {
			src = "config"
		}
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
		if !contains(manifest.Runtimes, name) {
			bad("runtimes."+name, "unknown runtime; use one of %s", strings.Join(manifest.Runtimes, ", "))
		}
	}
	if _, err := manifest.ParseQuantity(c.Logs.SegmentSize); err != nil {
		bad("logs.segment_size", "%v", err)
	}
	if c.Logs.Segments < 1 {
		bad("logs.segments", "must be >= 1")
	}
	if _, err := manifest.ParseQuantity(c.Sandbox.TmpSize); err != nil {
		bad("sandbox.tmp_size", "%v", err)
	}
	if c.Supervisor.KillGrace < 0 || c.Supervisor.BackoffInitial <= 0 || c.Supervisor.BackoffMax < c.Supervisor.BackoffInitial {
		bad("supervisor", "durations must be positive and backoff_max >= backoff_initial")
	}
	if err := c.Bus.WithDefaults().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%s: bus: %w", c.sourceName(), err))
	}
	if err := c.LLM.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", c.sourceName(), err))
	}
	return errors.Join(errs...)
}

// DaemonDefaults converts the defaults block for manifest.Resolve.
func (c *Config) DaemonDefaults() (manifest.DaemonDefaults, error) {
	mem, err := manifest.ParseQuantity(c.Defaults.Resources.MemLimit)
	if err != nil {
		return manifest.DaemonDefaults{}, fmt.Errorf("resources.mem_limit: %w", err)
	}
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
		Limits:        manifest.Limits{CPU: cpu, Memory: mem, Pids: c.Defaults.Resources.PidsLimit},
		RestartPolicy: rp,
		MaxRestarts:   c.Defaults.MaxRestarts,
	}, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (c *Config) sourceName() string {
	if c.Source == "" {
		return "config"
	}
	return c.Source
}
