package deps

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/runtimes"
)

// MetaVersion is the version of the meta file this build writes and reads.
const MetaVersion = 1

// Meta is a bundle's .cortex/deps.json: its layers and which agent uses
// which.
type Meta struct {
	Version int `json:"version"`
	// Layers by digest (bundle.Layer.Digest).
	Layers map[string]LayerInfo `json:"layers"`
	// Agents maps an agent's name to its layer's digest.
	Agents map[string]string `json:"agents"`
}

// LayerInfo says what one layer holds and what it was installed for.
type LayerInfo struct {
	// Kind is manifest.DepsPython or manifest.DepsNode.
	Kind string `json:"kind"`
	// Source is the dependency file, relative to the project directory.
	Source string `json:"source"`
	// Runtime is the manifest runtime the packages were installed for
	// (python3.11, nodejs20); Version and ABI are its interpreter's
	// (runtimes.Interpreter), Platform the host's GOOS/GOARCH.
	Runtime  string `json:"runtime"`
	Version  string `json:"version"`
	ABI      string `json:"abi,omitempty"`
	Platform string `json:"platform"`
	// Native says the layer holds compiled code (.so, .node files).
	Native bool `json:"native,omitempty"`
	// Packages lists the installed distributions, sorted by name.
	Packages []Package `json:"packages"`
}

// Package is one installed distribution.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Marshal returns the meta file's bytes: indented JSON with sorted keys,
// the same for the same content.
func (m *Meta) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ParseMeta decodes a meta file and checks it refers only to layers it
// lists; known, when not nil, lists the layers the bundle holds.
func ParseMeta(data []byte, known []string) (*Meta, error) {
	var m Meta
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, errdefs.New(errdefs.InvalidArgument, "deps.json: %v; rebuild the bundle with this cortex", err)
	}
	if m.Version != MetaVersion {
		return nil, errdefs.New(errdefs.InvalidArgument, "deps.json: version %d is not supported (this cortex reads %d); rebuild the bundle with this cortex", m.Version, MetaVersion)
	}
	have := map[string]bool{}
	for _, d := range known {
		have[d] = true
	}
	for d, l := range m.Layers {
		if known != nil && !have[d] {
			return nil, errdefs.New(errdefs.InvalidArgument, "deps.json: layer %s is not in the bundle; rebuild it", short(d))
		}
		if l.Kind != manifest.DepsPython && l.Kind != manifest.DepsNode {
			return nil, errdefs.New(errdefs.InvalidArgument, "deps.json: layer %s has kind %q", short(d), l.Kind)
		}
	}
	for a, d := range m.Agents {
		if _, ok := m.Layers[d]; !ok {
			return nil, errdefs.New(errdefs.InvalidArgument, "deps.json: agent %s uses layer %s, which it does not list; rebuild the bundle", a, short(d))
		}
	}
	return &m, nil
}

// For returns the layer of agent, if it has one.
func (m *Meta) For(agent string) (string, LayerInfo, bool) {
	if m == nil {
		return "", LayerInfo{}, false
	}
	d, ok := m.Agents[agent]
	if !ok {
		return "", LayerInfo{}, false
	}
	return d, m.Layers[d], true
}

// Check says whether an agent's packages, installed for l, can run with
// ip: Python packages need the same Python (major.minor) and ABI; Node
// packages with compiled code the same Node major and module ABI. The
// error says what differs and how to fix it.
func (l LayerInfo) Check(agent string, ip runtimes.Interpreter) error {
	same := ip.Runtime == l.Runtime && (l.ABI == "" || ip.ABI == "" || ip.ABI == l.ABI)
	if l.Kind == manifest.DepsNode && !l.Native {
		same = manifest.IsNode(ip.Runtime)
	}
	if same {
		return nil
	}
	return errdefs.WithHint(errdefs.New(errdefs.FailedPrecondition,
		"agent %s: its packages (from %s) were installed for %s %s (%s) but this host runs it with %s %s (%s)",
		agent, l.Source, l.Runtime, l.Version, l.ABI, ip.Runtime, ip.Version, ip.ABI),
		fmt.Sprintf("bundle the project on a host with the interpreter that runs it (cortex bundle), or set the agent's runtime to %s and install it here", l.Runtime))
}

func short(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}
