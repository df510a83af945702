package learn

import (
	"cmp"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cortexrt/cortex/internal/manifest"
)

// Suggestion is one capability entry an agent lacked.
type Suggestion struct {
	Agent string `json:"agent"`
	// Capability is the manifest name (network.access, filesystem.read,
	// filesystem.write, bus.publish, bus.subscribe, llm.access).
	Capability string `json:"capability"`
	// Value is the entry as written in cortex.yaml: "api.example.com:443",
	// "./data", "results", "fast".
	Value string `json:"value"`
	// Why is what was refused, for people.
	Why string `json:"why"`
}

// Note is a refusal no manifest line lifts (a budget, a literal address,
// an alias the daemon lacks), for people.
type Note struct {
	Agent string `json:"agent"`
	Text  string `json:"text"`
}

// internalSuffix marks Cortex's own names (llm.cortex.internal), which a
// capability other than network.access grants.
const internalSuffix = ".cortex.internal"

// Suggest proposes, for each refusal of denials, the narrowest entry of
// the agent's capabilities that would have allowed it, leaving out what
// the agent (its own capabilities merged with global_capabilities)
// already allows. projectDir is the project's directory: a refused read
// becomes the narrowest directory holding the path that exists there (a
// path that does not exist there, like an interpreter probing for
// modules, is no suggestion); a refused write the directory it was to be
// written in. Suggestions come per agent in manifest order, then by
// capability and value.
func Suggest(m *manifest.Manifest, denials []Denial, projectDir string) ([]Suggestion, []Note) {
	resolved := map[string]manifest.ResolvedAgent{}
	order := map[string]int{}
	for i, a := range m.Resolve(manifest.DaemonDefaults{}) {
		resolved[a.Name] = a
		order[a.Name] = i
	}
	var out []Suggestion
	var notes []Note
	seen := map[[3]string]*Suggestion{}
	add := func(agent, capName, value, why string) {
		k := [3]string{agent, capName, value}
		if s := seen[k]; s != nil {
			return
		}
		out = append(out, Suggestion{Agent: agent, Capability: capName, Value: value, Why: why})
		seen[k] = &out[len(out)-1]
	}
	for _, d := range denials {
		a, ok := resolved[d.Agent]
		if !ok {
			continue
		}
		caps := a.Capabilities
		switch d.Kind {
		case KindEgress:
			if d.Host == "llm"+internalSuffix {
				notes = append(notes, Note{d.Agent, "it reached for the LLM gateway without llm.access; add llm.access: [ALIAS] with the alias it asks for"})
				continue
			}
			if d.Host == "" || strings.HasSuffix(d.Host, internalSuffix) {
				continue
			}
			entry := d.Host
			if d.Port != 0 {
				entry += ":" + strconv.Itoa(d.Port)
			}
			r, err := manifest.ParseHostRule(entry)
			if err != nil {
				notes = append(notes, Note{d.Agent, fmt.Sprintf("egress to %s was refused (%s); it cannot be granted by name: %v", entry, d.Reason, err)})
				continue
			}
			if hostAllowed(caps.NetworkAccess, d.Host, d.Port) {
				continue
			}
			add(d.Agent, manifest.CapNetworkAccess, r.String(), fmt.Sprintf("egress to %s refused (%s)%s", entry, d.Reason, times(d.Count)))
		case KindBus:
			capName, acl := manifest.CapBusPublish, caps.BusPublish
			if d.Op == "subscribe" {
				capName, acl = manifest.CapBusSubscribe, caps.BusSubscribe
			}
			if d.Channel == "" || manifest.ChannelAllowed(acl, d.Channel) {
				continue
			}
			add(d.Agent, capName, d.Channel, fmt.Sprintf("%s on channel %s refused%s", d.Op, d.Channel, times(d.Count)))
		case KindLLM:
			switch {
			case d.Reason != "alias":
				notes = append(notes, Note{d.Agent, fmt.Sprintf("LLM alias %s: refused for %s; no capability line lifts that", d.Alias, d.Reason)})
			case d.Alias != "" && !slices.Contains(caps.LLMAccess, d.Alias):
				add(d.Agent, manifest.CapLLMAccess, d.Alias, fmt.Sprintf("LLM alias %s refused%s", d.Alias, times(d.Count)))
			}
		case KindFS:
			dir, write, ok := fsGrant(projectDir, d)
			if !ok {
				continue
			}
			capName, have := manifest.CapFilesystemRead, append(slices.Clone(caps.FilesystemRead), caps.FilesystemWrite...)
			if write {
				capName, have = manifest.CapFilesystemWrite, caps.FilesystemWrite
			}
			if covered(have, dir) {
				continue
			}
			add(d.Agent, capName, "./"+dir, fmt.Sprintf("%s of %s refused (%s)%s", d.Access, d.Path, d.Reason, times(d.Count)))
		}
	}
	out = simplify(out)
	slices.SortStableFunc(out, func(a, b Suggestion) int {
		return cmp.Or(cmp.Compare(order[a.Agent], order[b.Agent]), strings.Compare(a.Capability, b.Capability), strings.Compare(a.Value, b.Value))
	})
	return out, notes
}

func times(n int) string {
	if n > 1 {
		return fmt.Sprintf(", %d times", n)
	}
	return ""
}

// hostAllowed reports whether an agent's network.access allows host:port
// (port 0: any port of host).
func hostAllowed(rules []string, host string, port int) bool {
	for _, s := range rules {
		r, err := manifest.ParseHostRule(s)
		if err != nil {
			continue
		}
		if port == 0 {
			if r.Port == 0 && r.Matches(host, 0) {
				return true
			}
			continue
		}
		if r.Matches(host, port) {
			return true
		}
	}
	return false
}

// fsGrant is the directory a file system refusal asks for, relative to
// the project: for a write, the directory written in (the path itself
// when it is a directory of the project); for a read or exec, the
// narrowest directory of the project holding the path, which must exist
// there. ok is false for paths the project does not hold (reads), for
// the bundle's own .cortex, and for anything leaving the project.
func fsGrant(projectDir string, d Denial) (dir string, write, ok bool) {
	rel := path.Clean(d.Path)
	if rel == ".." || strings.HasPrefix(rel, "../") || path.IsAbs(rel) {
		return "", false, false
	}
	if rel == ".cortex" || strings.HasPrefix(rel, ".cortex/") {
		return "", false, false
	}
	isDir := func(p string) bool {
		if projectDir == "" {
			return false
		}
		fi, err := os.Stat(filepath.Join(projectDir, filepath.FromSlash(p)))
		return err == nil && fi.IsDir()
	}
	exists := func(p string) bool {
		if projectDir == "" {
			return false
		}
		_, err := os.Lstat(filepath.Join(projectDir, filepath.FromSlash(p)))
		return err == nil
	}
	if d.Access == "write" {
		switch {
		case d.Parent || isDir(rel):
			return rel, true, true
		default:
			return path.Dir(rel), true, true
		}
	}
	if !exists(rel) {
		return "", false, false
	}
	for dir = rel; dir != "." && !isDir(dir); dir = path.Dir(dir) {
	}
	return dir, false, true
}

// covered reports whether one of the grants (cleaned relative paths, as
// written: "./data") already covers dir.
func covered(grants []string, dir string) bool {
	for _, g := range grants {
		g = path.Clean(g)
		if g == "." || g == dir || strings.HasPrefix(dir, g+"/") {
			return true
		}
	}
	return false
}

// simplify drops file system suggestions another of the same agent
// covers: a directory below a suggested one, a read of a directory
// suggested for writing.
func simplify(in []Suggestion) []Suggestion {
	var out []Suggestion
	for i, s := range in {
		if s.Capability != manifest.CapFilesystemRead && s.Capability != manifest.CapFilesystemWrite {
			out = append(out, s)
			continue
		}
		dir := path.Clean(s.Value)
		drop := false
		for j, o := range in {
			if i == j || o.Agent != s.Agent || (o.Capability != manifest.CapFilesystemRead && o.Capability != manifest.CapFilesystemWrite) {
				continue
			}
			od := path.Clean(o.Value)
			coversDir := od == "." || strings.HasPrefix(dir, od+"/")
			switch {
			case s.Capability == manifest.CapFilesystemWrite && o.Capability == manifest.CapFilesystemWrite && coversDir:
				drop = true
			case s.Capability == manifest.CapFilesystemRead && (coversDir || od == dir && o.Capability == manifest.CapFilesystemWrite):
				drop = true
			}
		}
		if !drop {
			out = append(out, s)
		}
	}
	return out
}
