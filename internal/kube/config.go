package kube

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/strictyaml"
)

// ConfigFile is the name looked for beside cortex.yaml.
const ConfigFile = "cortex.kube.yaml"

// Config is cortex.kube.yaml: what a cluster needs to know that a manifest
// (which is the same on one node and on a cluster) does not say. Every
// field is optional except where a manifest asks for it: a filesystem.write
// grant needs a volume here.
type Config struct {
	Version string `yaml:"version"`
	// Registry is the repository prefix bundles are pushed to and pulled
	// from: the bundle of project P is REGISTRY/P@<manifest digest>.
	Registry string `yaml:"registry"`
	// Bundle pins the full reference instead (host/repo@sha256:...).
	Bundle string `yaml:"bundle"`
	// Namespace is the project's namespace (default cortex-<project>).
	Namespace string `yaml:"namespace"`
	// SystemNamespace is where the Helm chart installed the cluster-side
	// parts (NATS, the seccomp DaemonSet); default cortex-system.
	SystemNamespace string `yaml:"system_namespace"`
	Images          Images `yaml:"images"`
	// Seccomp is "localhost" (Cortex's own profile, installed on every node
	// by the chart's DaemonSet) or "runtime-default" (the container
	// runtime's profile plus Cortex's other walls).
	Seccomp string `yaml:"seccomp"`
	// VerifyKey is an ed25519 public key (PEM) file, relative to this file:
	// the init container refuses a bundle without a valid signature by it.
	VerifyKey string `yaml:"verify_key"`
	// LLMConfig is a file (relative to this one) with the LLM gateway's
	// configuration, the llm: section of a daemon config; provider keys
	// must be api_key_env names, filled from Secret cortex-llm-keys.
	// Required when an agent has llm.access.
	LLMConfig string `yaml:"llm_config"`
	// Volumes gives each filesystem.write grant its storage:
	// volumes: {AGENT: {"./output": {type: pvc, size: 1Gi}}}.
	Volumes map[string]map[string]VolumeConfig `yaml:"volumes"`

	// Source names the file in errors; Dir is its directory.
	Source string `yaml:"-"`
	Dir    string `yaml:"-"`
	root   *yaml.Node
}

// Images are the container images pods run.
type Images struct {
	// Cortex holds cortex and cortexd: the bundle fetcher, the bus
	// sidecar and the egress gateway.
	Cortex string `yaml:"cortex"`
	// Runtimes maps a manifest runtime to an image with its interpreter
	// (default: the official python:X.Y-slim and node:N-slim images).
	Runtimes map[string]string `yaml:"runtimes"`
}

// VolumeConfig is the storage behind one write grant.
type VolumeConfig struct {
	// Type is "pvc" (outlives the pod; size required) or "emptyDir"
	// (scratch space that lives as long as the pod).
	Type         string `yaml:"type"`
	Size         string `yaml:"size"`
	StorageClass string `yaml:"storage_class"`
	// AccessMode of the claim: ReadWriteOnce (default), ReadWriteOncePod or
	// ReadWriteMany.
	AccessMode string `yaml:"access_mode"`
}

// Seccomp modes.
const (
	SeccompLocalhost      = "localhost"
	SeccompRuntimeDefault = "runtime-default"
)

// DefaultConfig is the configuration without a file.
func DefaultConfig() *Config {
	return &Config{Version: "1", SystemNamespace: "cortex-system", Seccomp: SeccompLocalhost}
}

// LoadConfig reads path, or returns the defaults when path is "" or, with
// optional, does not exist.
func LoadConfig(path string, optional bool) (*Config, error) {
	if path == "" {
		return DefaultConfig(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if optional && os.IsNotExist(err) {
			return DefaultConfig(), nil
		}
		return nil, errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("kubernetes config: %w", err))
	}
	return ParseConfig(data, path)
}

// ParseConfig decodes data strictly over the defaults. It checks the
// file's own consistency; Render checks it against the manifest.
func ParseConfig(data []byte, source string) (*Config, error) {
	c := DefaultConfig()
	c.Source = source
	c.Dir = dirOf(source)
	root, err := strictyaml.Parse(data, source)
	if err != nil {
		return nil, err
	}
	c.root = root
	errs := strictyaml.DecodeNode(root, "", c, strictyaml.Options{})
	for _, e := range errs {
		e.File = source
	}
	errs = append(errs, c.validate()...)
	errs.Sort()
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

func dirOf(p string) string {
	if i := strings.LastIndex(p, "/"); i >= 0 {
		return p[:i]
	}
	return "."
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

func (c *Config) validate() strictyaml.Errors {
	var errs strictyaml.Errors
	bad := func(field, msg, fix string) { errs = append(errs, c.errAt(field, msg, fix)) }
	if c.Version != "1" {
		bad("version", fmt.Sprintf("%q is not a version this build reads", c.Version), `write version: "1"`)
	}
	if c.Namespace != "" && !dnsLabel.MatchString(c.Namespace) {
		bad("namespace", fmt.Sprintf("%q is not a namespace name", c.Namespace), "use lower-case letters, digits and '-', at most 63")
	}
	if !dnsLabel.MatchString(c.SystemNamespace) {
		bad("system_namespace", fmt.Sprintf("%q is not a namespace name", c.SystemNamespace), "use lower-case letters, digits and '-', at most 63")
	}
	if c.Seccomp != SeccompLocalhost && c.Seccomp != SeccompRuntimeDefault {
		bad("seccomp", fmt.Sprintf("%q is not a seccomp mode", c.Seccomp), "write localhost (Cortex's own filter) or runtime-default")
	}
	if c.Registry != "" && c.Bundle != "" {
		bad("bundle", "both registry and bundle are set", "keep one: registry (a repository prefix) or bundle (a pinned reference)")
	}
	for _, rt := range sortedKeys(c.Images.Runtimes) {
		if !contains(manifest.Runtimes, rt) {
			bad("images.runtimes."+rt, "unknown runtime", strictyaml.DidYouMean(rt, manifest.Runtimes, "runtimes: "+strings.Join(manifest.Runtimes, ", ")))
		}
	}
	for _, agent := range sortedKeys(c.Volumes) {
		for _, path := range sortedKeys(c.Volumes[agent]) {
			v := c.Volumes[agent][path]
			f := "volumes." + agent + "." + path
			switch v.Type {
			case "pvc":
				if v.Size == "" {
					bad(f+".size", "a pvc needs a size", "e.g. size: 1Gi")
				}
				switch v.AccessMode {
				case "", "ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany":
				default:
					bad(f+".access_mode", fmt.Sprintf("%q is not an access mode", v.AccessMode), "write ReadWriteOnce, ReadWriteOncePod or ReadWriteMany")
				}
			case "emptyDir":
				if v.StorageClass != "" || v.AccessMode != "" {
					bad(f, "storage_class and access_mode are for type pvc", "remove them, or use type: pvc")
				}
			default:
				bad(f+".type", fmt.Sprintf("%q is not a volume type", v.Type), "write type: pvc (kept) or type: emptyDir (scratch)")
			}
			if v.Size != "" {
				if _, err := manifest.ParseQuantity(v.Size); err != nil {
					bad(f+".size", err.Error(), "")
				}
			}
		}
	}
	return errs
}

// errAt is an error at field (a dotted path through mappings), positioned
// at its node when the file has one.
func (c *Config) errAt(field, msg, fix string) *strictyaml.Error {
	e := &strictyaml.Error{File: c.Source, Field: field, Msg: msg, Fix: fix}
	if n := c.node(field); n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	return e
}

// node finds the node of a dotted field path (the value of a scalar, the
// key of anything else). Keys may contain dots
// ("./output"), so each step takes the longest key that prefixes the rest.
func (c *Config) node(field string) *yaml.Node {
	if c.root == nil {
		return nil
	}
	n := c.root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	var key *yaml.Node
	for rest := field; rest != ""; {
		n = strictyaml.Deref(n)
		if n == nil || n.Kind != yaml.MappingNode {
			return key
		}
		var k, v *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			kv := n.Content[i].Value
			if (rest == kv || strings.HasPrefix(rest, kv+".")) && (k == nil || len(kv) > len(k.Value)) {
				k, v = n.Content[i], n.Content[i+1]
			}
		}
		if k == nil {
			return key
		}
		key, n = k, v
		rest = strings.TrimPrefix(strings.TrimPrefix(rest, k.Value), ".")
	}
	// A scalar is reported where its value is, anything else at its key.
	if v := strictyaml.Deref(n); v != nil && v.Kind == yaml.ScalarNode && v.Line > 0 {
		return v
	}
	return key
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
