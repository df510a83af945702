// Package learn turns what a project's agents were refused into the
// capability lines that would have allowed it: least-privilege manifests
// from observation (cortex run --learn; the console's denials inbox).
//
// A Collector takes the daemon's events (internal/events: egress.denied,
// bus.denied, llm.denied, fs.denied) of one project and keeps each
// distinct refusal once, with a count. Suggest reads the refusals against
// the manifest and the project directory and proposes, per agent, the
// narrowest lines: an exact host:port, an exact bus channel, an LLM alias,
// the narrowest directory under the project. It never proposes a
// wildcard, a path outside the project, or what the agent already has.
// Patch adds the lines to cortex.yaml's text, keeping its comments,
// order and formatting, and Diff shows the change.
//
// This package decides nothing at run time: enforcement never depends on
// it. It must stay light (the CLI links it): no I/O but reading the
// project directory in Suggest.
package learn

import (
	"cmp"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/cortexrt/cortex/internal/events"
)

// Kinds of refusal.
const (
	KindEgress = "egress"
	KindBus    = "bus"
	KindLLM    = "llm"
	KindFS     = "fs"
)

// AppDir is where an agent sees the project (supervisor.AppDir).
const AppDir = "/app"

// Denial is one distinct refusal of one agent.
type Denial struct {
	Agent string `json:"agent"`
	Kind  string `json:"kind"`
	// Egress: the name and port asked for (Port 0: only the name was
	// resolved), the gateway's reason.
	Host string `json:"host,omitempty"`
	Port int    `json:"port,omitempty"`
	// Bus: "publish" or "subscribe" and the channel.
	Op      string `json:"op,omitempty"`
	Channel string `json:"channel,omitempty"`
	// LLM: the alias.
	Alias string `json:"alias,omitempty"`
	// FS: the path relative to the project ("data/topics.txt"), the access
	// ("read", "write", "exec"), and whether the kernel named only the
	// directory an entry was to be made in.
	Path   string `json:"path,omitempty"`
	Access string `json:"access,omitempty"`
	Parent bool   `json:"parent,omitempty"`
	// Reason is why it was refused, as the subsystem said.
	Reason string `json:"reason,omitempty"`
	// Count is how many times it happened.
	Count int `json:"count"`
}

func (d Denial) key() string {
	return strings.Join([]string{d.Agent, d.Kind, d.Host, itoa(d.Port), d.Op, d.Channel, d.Alias, d.Path, d.Access, d.Reason}, "\x00")
}

// MaxDenials bounds the distinct refusals a Collector keeps; the rest are
// counted in Dropped.
const MaxDenials = 2000

// Collector keeps the distinct refusals of one project. It is safe for
// concurrent use; Add is cheap enough for an events.Stream Tap.
type Collector struct {
	project string
	mu      sync.Mutex
	byKey   map[string]*Denial
	order   []*Denial
	dropped int
}

// NewCollector collects the refusals of project.
func NewCollector(project string) *Collector {
	return &Collector{project: project, byKey: map[string]*Denial{}}
}

// Add takes one event; events of other projects and types are ignored.
func (c *Collector) Add(e events.Event) {
	if e.Project != c.project || e.Agent == "" {
		return
	}
	d, ok := FromEvent(e)
	if !ok {
		return
	}
	k := d.key()
	c.mu.Lock()
	defer c.mu.Unlock()
	if have := c.byKey[k]; have != nil {
		have.Count++
		return
	}
	if len(c.order) >= MaxDenials {
		c.dropped++
		return
	}
	d.Count = 1
	c.byKey[k] = &d
	c.order = append(c.order, &d)
}

// FromEvent reads a refusal from an event; ok is false for other events
// and for refusals no manifest line could lift (a malformed request, a
// literal address, a path outside the project).
func FromEvent(e events.Event) (Denial, bool) {
	d := Denial{Agent: e.Agent}
	switch v := e.Detail.(type) {
	case events.EgressDeniedDetail:
		if v.Host == "" {
			return d, false // a literal address: names only in a manifest
		}
		d.Kind, d.Host, d.Port, d.Reason = KindEgress, strings.ToLower(strings.TrimSuffix(v.Host, ".")), v.Port, v.Reason
		if v.Protocol == "dns" {
			d.Port = 0
		}
	case events.BusDeniedDetail:
		d.Kind, d.Op, d.Channel, d.Reason = KindBus, v.Op, v.Channel, v.Reason
	case events.LLMDeniedDetail:
		d.Kind, d.Alias, d.Reason = KindLLM, v.Alias, v.Reason
	case events.FSDeniedDetail:
		rel, ok := strings.CutPrefix(path.Clean(v.Path), AppDir)
		if !ok || (rel != "" && rel[0] != '/') {
			return d, false
		}
		rel = strings.TrimPrefix(rel, "/")
		if rel == "" {
			rel = "."
		}
		d.Kind, d.Path, d.Access, d.Reason, d.Parent = KindFS, rel, v.Access, v.Errno, v.Parent
	default:
		return d, false
	}
	return d, true
}

// Denials returns the refusals so far, by agent, kind and value, and how
// many distinct ones did not fit.
func (c *Collector) Denials() ([]Denial, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Denial, len(c.order))
	for i, d := range c.order {
		out[i] = *d
	}
	Sort(out)
	return out, c.dropped
}

// Sort orders denials by agent, kind and value.
func Sort(ds []Denial) {
	slices.SortFunc(ds, func(a, b Denial) int {
		return cmp.Or(strings.Compare(a.Agent, b.Agent), strings.Compare(a.Kind, b.Kind), strings.Compare(a.key(), b.key()))
	})
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for ; n > 0; n /= 10 {
		i--
		b[i] = byte('0' + n%10)
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
