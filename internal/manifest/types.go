package manifest

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/cortexrt/cortex/internal/strictyaml"
	"go.yaml.in/yaml/v3"
)

// Version is the only manifest version this build understands.
const Version = "1"

// RestartPolicy says when the supervisor restarts an agent that ended.
type RestartPolicy string

const (
	RestartNo        RestartPolicy = "no"
	RestartOnFailure RestartPolicy = "on-failure"
	RestartAlways    RestartPolicy = "always"
)

// Runtimes lists the runtime names a manifest may use, oldest first
// within each language.
var Runtimes = []string{"python3.10", "python3.11", "python3.12", "python3.13", "nodejs18", "nodejs20", "nodejs22"}

// RuntimeRangeOp separates a language from its lowest version in a
// runtime range: "python>=3.11" is any known Python from 3.11 up,
// "nodejs>=20" any known Node from 20 up. The daemon picks the newest
// one installed when the project starts (and keeps it for every run).
const RuntimeRangeOp = ">="

// RuntimeCandidates returns what runtime may run as: itself for a runtime
// name, the known runtimes of the range newest first for a range whose
// lowest version is a known runtime ("python>=3.11"); ok is false for
// anything else (unknown names, "python>=3.9", "python>3.11", spaces).
func RuntimeCandidates(runtime string) (cands []string, ok bool) {
	if slices.Contains(Runtimes, runtime) {
		return []string{runtime}, true
	}
	lang, floor, found := strings.Cut(runtime, RuntimeRangeOp)
	if !found || (lang != "python" && lang != "nodejs") {
		return nil, false
	}
	lowest := slices.Index(Runtimes, lang+floor)
	if lowest < 0 {
		return nil, false
	}
	for i := len(Runtimes) - 1; i >= lowest; i-- {
		if strings.HasPrefix(Runtimes[i], lang) {
			cands = append(cands, Runtimes[i])
		}
	}
	return cands, true
}

// IsRuntimeRange reports whether runtime is a valid range ("python>=3.11").
func IsRuntimeRange(runtime string) bool {
	_, ok := RuntimeCandidates(runtime)
	return ok && strings.Contains(runtime, RuntimeRangeOp)
}

// ValidRuntime reports whether a manifest may name runtime: a runtime
// name or a range.
func ValidRuntime(runtime string) bool {
	_, ok := RuntimeCandidates(runtime)
	return ok
}

// IsPython reports whether runtime is one of the python runtimes.
func IsPython(runtime string) bool { return strings.HasPrefix(runtime, "python") }

// IsNode reports whether runtime is one of the node runtimes.
func IsNode(runtime string) bool { return strings.HasPrefix(runtime, "nodejs") }

// Manifest is a parsed cortex.yaml. Zero values mean "not set"; Resolve
// fills them from defaults and the daemon config. The yaml, example and fix
// tags are the schema Parse decodes with (internal/strictyaml); the
// shapes a struct cannot say are decoded by hand (parse.go).
type Manifest struct {
	Version            string       `json:"version" yaml:"version"`
	Project            string       `json:"project" yaml:"project"`
	Defaults           Defaults     `json:"defaults" yaml:"defaults" fix:"write defaults: {runtime: python3.11, resources: {cpu_limit: 1.0, mem_limit: 2Gi}}"`
	GlobalCapabilities Capabilities `json:"global_capabilities" yaml:"global_capabilities"`
	Agents             []Agent      `json:"agents" yaml:"agents"`
	// LLM is an addition to the seed schema: how the project's LLM calls
	// are answered (see LLMSettings).
	LLM LLMSettings `json:"llm,omitzero" yaml:"llm"`

	// Source is the file name errors are reported against.
	Source string `json:"-" yaml:"-"`
	// pos maps a field path ("agents[1].resources.mem_limit") to where it
	// was written, so validation errors can point at it.
	pos map[string]Position
	// bad holds the field paths Parse reported a problem for; Validate
	// says nothing more about them or anything under them.
	bad map[string]bool
}

// Defaults is the manifest's project-level defaults block.
type Defaults struct {
	Runtime       string        `json:"runtime,omitempty" yaml:"runtime"`
	Resources     Resources     `json:"resources" yaml:"resources" fix:"write resources: {cpu_limit: 0.5, mem_limit: 512Mi}"`
	RestartPolicy RestartPolicy `json:"restart_policy,omitempty" yaml:"restart_policy"`
	MaxRestarts   *int          `json:"max_restarts,omitempty" yaml:"max_restarts"`
}

// Resources are the per-agent ceilings. Zero means unset.
type Resources struct {
	CPULimit  float64  `json:"cpu_limit,omitempty" yaml:"cpu_limit" example:"0.5"`   // cores, fractional
	MemLimit  Quantity `json:"mem_limit,omitempty" yaml:"mem_limit"`                 // bytes
	PidsLimit int64    `json:"pids_limit,omitempty" yaml:"pids_limit" example:"128"` // processes+threads
}

// Agent is one entry of agents:. RestartPolicy and MaxRestarts are an
// addition to the seed schema: an agent may override the defaults.
type Agent struct {
	Name          string        `json:"name" yaml:"name"`
	Description   string        `json:"description,omitempty" yaml:"description"`
	Runtime       string        `json:"runtime,omitempty" yaml:"runtime"`
	Entrypoint    string        `json:"entrypoint" yaml:"entrypoint"`
	Resources     Resources     `json:"resources" yaml:"resources" fix:"write resources: {cpu_limit: 0.5, mem_limit: 512Mi}"`
	Capabilities  Capabilities  `json:"capabilities" yaml:"capabilities"`
	Env           []EnvVar      `json:"env,omitempty" yaml:"env"`
	RestartPolicy RestartPolicy `json:"restart_policy,omitempty" yaml:"restart_policy"`
	MaxRestarts   *int          `json:"max_restarts,omitempty" yaml:"max_restarts"`
	// Dependencies names the file the agent's packages are installed
	// from (an addition: by default a Python agent uses the project's
	// requirements.txt or pyproject.toml, a Node agent its package.json).
	Dependencies *Dependencies `json:"dependencies,omitempty" yaml:"dependencies"`
}

// Dependencies is an agent's dependencies: key, written as a path
// ("requirements/worker.txt"), as "none", or as a map {file: package.json,
// scripts: true}.
type Dependencies struct {
	// File is the dependency file, relative to the project directory:
	// package.json (Node), pyproject.toml, or a pip requirements file
	// (any other name).
	File string `json:"file,omitempty" yaml:"file"`
	// None: the agent gets no packages, whatever the project holds.
	None bool `json:"none,omitempty" yaml:"-"`
	// Scripts lets npm run the packages' install scripts (Node only;
	// off by default: npm ci --ignore-scripts).
	Scripts bool `json:"scripts,omitempty" yaml:"scripts"`
}

// DependenciesNone is the value of dependencies: that gives an agent no
// packages.
const DependenciesNone = "none"

// Dependency file kinds (DependencyKind).
const (
	DepsPython = "python"
	DepsNode   = "node"
)

// DependencyKind says which language a dependency file is for:
// package.json is Node's, anything else (pyproject.toml, a requirements
// file) Python's.
func DependencyKind(file string) string {
	if path.Base(file) == "package.json" {
		return DepsNode
	}
	return DepsPython
}

// LLMSettings is the manifest's llm: block.
type LLMSettings struct {
	// Replay is a directory of LLM cassettes (recorded with cortex run
	// --llm-record), relative to the project directory: the project's
	// LLM calls are answered from it, without any provider, key or
	// network. A run's --llm-record or --llm-replay flag takes its place.
	Replay string `json:"replay,omitempty" yaml:"replay" example:"./cassettes"`
}

// EnvVar is one env entry, kept in the order written.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Capabilities is the decoded form of a capabilities list (a list of
// one-key maps in YAML). Nil slices mean "not declared".
type Capabilities struct {
	NetworkAccess   []string   `json:"network.access,omitempty"`
	FilesystemRead  []string   `json:"filesystem.read,omitempty"`
	FilesystemWrite []string   `json:"filesystem.write,omitempty"`
	Metrics         bool       `json:"observability.metrics,omitempty"`
	Logging         string     `json:"security.logging,omitempty"` // "", "default" or "strict"
	BusBroker       string     `json:"bus.broker,omitempty"`       // global only
	BusPublish      []string   `json:"bus.publish,omitempty"`      // nil: all channels of the project
	BusSubscribe    []string   `json:"bus.subscribe,omitempty"`    // nil: all channels of the project
	BusDurable      []string   `json:"bus.durable,omitempty"`
	LLMAccess       []string   `json:"llm.access,omitempty"`
	LLMBudget       *LLMBudget `json:"llm.budget,omitempty"`
}

// LLMBudget limits an agent's use of the LLM gateway. Zero means no limit.
type LLMBudget struct {
	TokensPerDay      int64   `json:"tokens_per_day,omitempty" yaml:"tokens_per_day" example:"100000"`
	DollarsPerDay     float64 `json:"dollars_per_day,omitempty" yaml:"dollars_per_day" example:"5"`
	RequestsPerMinute int     `json:"requests_per_minute,omitempty" yaml:"requests_per_minute"`
}

// Position is a place in the source file (1-based).
type Position struct {
	Line, Col int
}

// Quantity is a byte count written as 512Mi, 2Gi, 1048576 (plain bytes),
// or with Ki/Ti suffixes.
type Quantity int64

var quantitySuffixes = []struct {
	suffix string
	mult   int64
}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}}

// ParseQuantity parses s. It refuses SI suffixes (2GB, 2G) with a hint,
// negative values and overflow.
func ParseQuantity(s string) (Quantity, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty quantity; use Mi or Gi, e.g. 512Mi")
	}
	mult := int64(1)
	num := s
	for _, q := range quantitySuffixes {
		if strings.HasSuffix(s, q.suffix) {
			mult, num = q.mult, strings.TrimSuffix(s, q.suffix)
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || strings.HasPrefix(num, "+") {
		return 0, fmt.Errorf("%q is not a quantity; use Mi or Gi, e.g. 2Gi", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is too large; write a smaller size, e.g. 2Gi", s)
	}
	return Quantity(n * mult), nil
}

// UnmarshalYAML decodes a quantity written as text (512Mi) or a plain
// number of bytes, so every config file that strictyaml decodes parses
// sizes once, with ParseQuantity's wording.
func (q *Quantity) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() == strictyaml.TagBinary {
		return fmt.Errorf("expected a string, found %s", strictyaml.Describe(n))
	}
	v, err := ParseQuantity(n.Value)
	if err != nil {
		return err
	}
	*q = v
	return nil
}

// String formats q in the largest binary unit that divides it exactly.
func (q Quantity) String() string {
	for i := len(quantitySuffixes) - 1; i >= 0; i-- {
		s := quantitySuffixes[i]
		if q != 0 && int64(q)%s.mult == 0 {
			return strconv.FormatInt(int64(q)/s.mult, 10) + s.suffix
		}
	}
	return strconv.FormatInt(int64(q), 10)
}

// Limits are the resolved, always-set ceilings of one agent.
type Limits struct {
	CPU    float64  `json:"cpu"`
	Memory Quantity `json:"memory"`
	Pids   int64    `json:"pids"`
}

// DaemonDefaults are the daemon config's values, the last step of
// resolution (agent, then manifest defaults, then these).
type DaemonDefaults struct {
	Runtime       string
	Limits        Limits
	RestartPolicy RestartPolicy
	MaxRestarts   int
}

// ResolvedAgent is an agent with every field decided.
type ResolvedAgent struct {
	Project     string `json:"project"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Runtime     string `json:"runtime"`
	// RuntimeRange is the range the manifest asked for ("python>=3.11")
	// when the daemon picked Runtime from it; empty for a runtime name.
	RuntimeRange  string        `json:"runtime_range,omitempty"`
	Entrypoint    string        `json:"entrypoint"`
	Limits        Limits        `json:"limits"`
	RestartPolicy RestartPolicy `json:"restart_policy"`
	MaxRestarts   int           `json:"max_restarts"`
	// Capabilities are the agent's own merged with global_capabilities
	// (lists are unioned; scalars: agent wins).
	Capabilities Capabilities `json:"capabilities"`
	Env          []EnvVar     `json:"env,omitempty"`
	// Dependencies is the agent's dependencies: key, as written.
	Dependencies *Dependencies `json:"dependencies,omitempty"`
	// Packages is the layer of vendored packages the agent runs with, set
	// by the daemon from the bundle (never from cortex.yaml).
	Packages *Packages `json:"packages,omitempty"`
}

// Packages names an agent's layer of installed packages in a host's
// layer store.
type Packages struct {
	// Kind is DepsPython or DepsNode.
	Kind string `json:"kind"`
	// Layer is the layer's digest (64 hex digits).
	Layer string `json:"layer"`
}
