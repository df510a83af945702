package manifest

import (
	"fmt"
	"strings"

	"github.com/cortexrt/cortex/internal/strictyaml"
	"go.yaml.in/yaml/v3"
)

// Capability names, as written in cortex.yaml.
const (
	CapNetworkAccess   = "network.access"
	CapFilesystemRead  = "filesystem.read"
	CapFilesystemWrite = "filesystem.write"
	CapMetrics         = "observability.metrics"
	CapLogging         = "security.logging"
	CapBusBroker       = "bus.broker"
	CapBusPublish      = "bus.publish"
	CapBusSubscribe    = "bus.subscribe"
	CapBusDurable      = "bus.durable"
	CapLLMAccess       = "llm.access"
	CapLLMBudget       = "llm.budget"
)

// CapabilityNames lists every capability a manifest may declare.
var CapabilityNames = []string{
	CapNetworkAccess, CapFilesystemRead, CapFilesystemWrite, CapMetrics, CapLogging,
	CapBusBroker, CapBusPublish, CapBusSubscribe, CapBusDurable, CapLLMAccess, CapLLMBudget,
}

// capExamples show the expected form of each capability in fixes.
var capExamples = map[string]string{
	CapNetworkAccess:   `["api.example.com"]`,
	CapFilesystemRead:  `["./data"]`,
	CapFilesystemWrite: `["./output"]`,
	CapMetrics:         `true`,
	CapLogging:         `strict`,
	CapBusBroker:       `"redis://host:6379"`,
	CapBusPublish:      `[results]`,
	CapBusSubscribe:    `[tasks]`,
	CapBusDurable:      `[results]`,
	CapLLMAccess:       `[fast]`,
	CapLLMBudget:       `{tokens_per_day: 100000}`,
}

// Logging levels of security.logging.
const (
	LoggingDefault = "default"
	LoggingStrict  = "strict"
)

// capabilities decodes a capabilities list: a list of one-key maps.
// Capability fields are recorded as <field>.<name>, items that are not
// well-formed as <field>[i].
func (d *decoder) capabilities(field string, n *yaml.Node) Capabilities {
	var c Capabilities
	n, ok := d.value(field, n)
	if !ok {
		return c
	}
	if n.Kind != yaml.SequenceNode {
		fix := `write each capability as a list item: - network.access: ["api.example.com"]`
		if n.Kind == yaml.MappingNode && len(n.Content) > 0 {
			if k := strictyaml.Deref(n.Content[0]).Value; capExamples[k] != "" {
				fix = fmt.Sprintf("write each capability as its own list item, e.g. - %s: %s", k, capExamples[k])
			}
		}
		d.typeErr(field, n, "a list of one-key maps", fix)
		return c
	}
	first := map[string]Position{}
	for i, item := range n.Content {
		itemField := strictyaml.Index(field, i)
		d.at(itemField, item)
		item, ok := d.value(itemField, item)
		if !ok {
			if strictyaml.IsNull(item) {
				d.add(itemField, "empty list item", `write a capability: - network.access: ["api.example.com"]`)
			}
			continue
		}
		if item.Kind != yaml.MappingNode {
			fix := `write it as a one-key map: - network.access: ["api.example.com"]`
			if item.Kind == yaml.ScalarNode {
				if ex, known := capExamples[item.Value]; known {
					fix = fmt.Sprintf("write it as a one-key map: - %s: %s", item.Value, ex)
				}
			}
			d.typeErr(itemField, item, "a one-key map (name: value)", fix)
			continue
		}
		ps, errs := strictyaml.Pairs(item, itemField)
		d.strict(errs)
		if len(errs) > 0 {
			continue
		}
		if len(ps) != 1 {
			keys := make([]string, len(ps))
			for j, p := range ps {
				keys[j] = p.Key
			}
			d.add(itemField, fmt.Sprintf("a capability item must have exactly one key, found %d (%s)", len(ps), strings.Join(keys, ", ")),
				`give each capability its own "- " list item: - network.access: [...] then - filesystem.read: [...]`)
			continue
		}
		p := ps[0]
		name := p.Key
		f := strictyaml.Join(field, name)
		ex, known := capExamples[name]
		if !known {
			d.at(f, p.KeyNode)
			d.add(f, "unknown capability", strictyaml.DidYouMean(name, CapabilityNames, "known capabilities: "+strings.Join(CapabilityNames, ", ")))
			continue
		}
		if pos, dup := first[name]; dup {
			d.add(itemField, fmt.Sprintf("%s is declared twice; first at line %d", name, pos.Line), "merge both into one item")
			continue
		}
		d.at(f, p.KeyNode)
		first[name] = d.m.Pos(f)
		v, ok := d.value(f, p.Value)
		if !ok {
			if strictyaml.IsNull(v) {
				d.add(f, "no value", fmt.Sprintf("write %s: %s", name, ex))
			}
			continue
		}
		switch name {
		case CapNetworkAccess:
			c.NetworkAccess = d.strList(f, v, ex)
		case CapFilesystemRead:
			c.FilesystemRead = d.strList(f, v, ex)
		case CapFilesystemWrite:
			c.FilesystemWrite = d.strList(f, v, ex)
		case CapMetrics:
			c.Metrics, _ = d.bool(f, v)
		case CapLogging:
			c.Logging, _ = d.str(f, v)
		case CapBusBroker:
			c.BusBroker, _ = d.str(f, v)
		case CapBusPublish:
			c.BusPublish = d.strList(f, v, ex)
		case CapBusSubscribe:
			c.BusSubscribe = d.strList(f, v, ex)
		case CapBusDurable:
			c.BusDurable = d.strList(f, v, ex)
		case CapLLMAccess:
			c.LLMAccess = d.strList(f, v, ex)
		case CapLLMBudget:
			c.LLMBudget = d.budget(f, v)
		}
	}
	return c
}

// ChannelMatches reports whether a bus.publish / bus.subscribe entry allows
// channel. Channel names are dot-separated tokens of [A-Za-z0-9_-]; an entry
// is a channel name, "*" (every channel of the project), or a name ending in
// ".*", which allows every channel below that prefix ("results.*" allows
// "results.a" and "results.a.b", not "results").
func ChannelMatches(pattern, channel string) bool {
	if pattern == "*" {
		return channel != ""
	}
	if prefix, ok := strings.CutSuffix(pattern, ".*"); ok {
		return strings.HasPrefix(channel, prefix+".") && len(channel) > len(prefix)+1
	}
	return pattern == channel
}

// ChannelAllowed reports whether an ACL (a resolved BusPublish or
// BusSubscribe) allows channel: a nil ACL allows every channel, an empty one
// none.
func ChannelAllowed(acl []string, channel string) bool {
	if acl == nil {
		return true
	}
	for _, p := range acl {
		if ChannelMatches(p, channel) {
			return true
		}
	}
	return false
}
