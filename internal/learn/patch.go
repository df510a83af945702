package learn

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/manifest"
	"go.yaml.in/yaml/v3"
)

// Patch adds the suggestions to the manifest text src (named file in
// errors) and returns the new text. Only lines are inserted and flow
// lists ([a, b]) extended: every comment, blank line, key order and
// style of src stays as written. An agent's entry joins the capability
// item of the same name when it has one, else a new item is added after
// its last, else a capabilities: block after the agent's last line. The
// result is checked: it must parse and give each agent what was
// suggested.
func Patch(src []byte, file string, sugg []Suggestion) ([]byte, error) {
	if len(sugg) == 0 {
		return slices.Clone(src), nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil || len(doc.Content) == 0 {
		return nil, errdefs.New(errdefs.InvalidArgument, "%s: cannot read it to apply what was learned: %v", file, err)
	}
	p := &patcher{lines: splitLines(src), file: file}
	root := doc.Content[0]
	agents := mapValue(root, "agents")
	if agents == nil || agents.Kind != yaml.SequenceNode {
		return nil, errdefs.New(errdefs.InvalidArgument, "%s: no agents list", file)
	}
	// Group by agent, then capability, keeping the suggestions' order.
	byAgent := map[string][]Suggestion{}
	var names []string
	for _, s := range sugg {
		if _, ok := byAgent[s.Agent]; !ok {
			names = append(names, s.Agent)
		}
		byAgent[s.Agent] = append(byAgent[s.Agent], s)
	}
	for _, name := range names {
		agent := findAgent(agents, name)
		if agent == nil {
			return nil, errdefs.New(errdefs.InvalidArgument, "%s: no agent %q", file, name)
		}
		caps := map[string][]string{}
		var capOrder []string
		for _, s := range byAgent[name] {
			if _, ok := caps[s.Capability]; !ok {
				capOrder = append(capOrder, s.Capability)
			}
			caps[s.Capability] = append(caps[s.Capability], s.Value)
		}
		if err := p.agent(agent, capOrder, caps); err != nil {
			return nil, err
		}
	}
	out := p.bytes()
	if err := verify(out, file, sugg); err != nil {
		return nil, err
	}
	return out, nil
}

// patcher edits a text by line. Edits are recorded against the original
// line numbers and applied at the end, last line first.
type patcher struct {
	file  string
	lines []string // with their line ends
	edits []edit
}

type edit struct {
	line int    // 1-based line the edit is about
	col  int    // 0-based byte column for an insertion into the line; -1: insert whole lines after line
	del  int    // bytes removed at col before text goes in
	text string // what is inserted
	seq  int
}

func splitLines(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			out = append(out, string(b))
			break
		}
		out = append(out, string(b[:i+1]))
		b = b[i+1:]
	}
	return out
}

func (p *patcher) insertLines(after int, text string) {
	p.edits = append(p.edits, edit{line: after, col: -1, text: text, seq: len(p.edits)})
}

func (p *patcher) insertAt(line, col int, text string) {
	p.edits = append(p.edits, edit{line: line, col: col, text: text, seq: len(p.edits)})
}

func (p *patcher) bytes() []byte {
	lines := slices.Clone(p.lines)
	if n := len(lines); n > 0 && !strings.HasSuffix(lines[n-1], "\n") {
		lines[n-1] += "\n"
	}
	edits := slices.Clone(p.edits)
	// Last line first; within a line, rightmost insertion first; whole
	// lines after in-line insertions; equal places in order of recording.
	slices.SortStableFunc(edits, func(a, b edit) int {
		if a.line != b.line {
			return b.line - a.line
		}
		if a.col != b.col {
			if a.col == -1 {
				return -1
			}
			if b.col == -1 {
				return 1
			}
			return b.col - a.col
		}
		return b.seq - a.seq
	})
	for _, e := range edits {
		i := e.line - 1
		if e.col < 0 {
			lines = slices.Insert(lines, i+1, e.text)
			continue
		}
		l := lines[i]
		lines[i] = l[:e.col] + e.text + l[e.col+e.del:]
	}
	return []byte(strings.Join(lines, ""))
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func mapKey(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i]
		}
	}
	return nil
}

func findAgent(agents *yaml.Node, name string) *yaml.Node {
	for _, a := range agents.Content {
		if a.Kind == yaml.MappingNode {
			if n := mapValue(a, "name"); n != nil && n.Value == name {
				return a
			}
		}
	}
	return nil
}

// lastLine is the last line a node's text takes: its deepest last
// descendant's, or the closing bracket of a flow collection.
func (p *patcher) lastLine(n *yaml.Node) int {
	end := n.Line
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Line > end {
			end = n.Line
		}
		if n.Kind == yaml.ScalarNode && (n.Style&(yaml.LiteralStyle|yaml.FoldedStyle)) != 0 {
			end = max(end, n.Line+strings.Count(strings.TrimRight(n.Value, "\n"), "\n")+1)
		}
		for _, c := range n.Content {
			walk(c)
		}
		if (n.Kind == yaml.SequenceNode || n.Kind == yaml.MappingNode) && n.Style&yaml.FlowStyle != 0 {
			if l, _, ok := p.closing(n); ok && l > end {
				end = l
			}
		}
	}
	walk(n)
	return end
}

// closing finds the bracket closing the flow collection n: its line and
// 0-based byte column.
func (p *patcher) closing(n *yaml.Node) (line, col int, ok bool) {
	open, closeCh := byte('['), byte(']')
	if n.Kind == yaml.MappingNode {
		open, closeCh = '{', '}'
	}
	depth := 0
	var quote byte
	for li := n.Line - 1; li < len(p.lines); li++ {
		l := p.lines[li]
		start := 0
		if li == n.Line-1 {
			start = byteCol(l, n.Column)
		}
		for i := start; i < len(l); i++ {
			c := l[i]
			switch {
			case quote != 0:
				if c == '\\' && quote == '"' {
					i++
				} else if c == quote {
					quote = 0
				}
			case c == '"' || c == '\'':
				quote = c
			case c == '#' && (i == 0 || l[i-1] == ' ' || l[i-1] == '\t'):
				i = len(l)
			case c == open || c == '[' || c == '{':
				depth++
			case c == closeCh || c == ']' || c == '}':
				depth--
				if depth == 0 {
					return li + 1, i, true
				}
			}
		}
	}
	return 0, 0, false
}

// byteCol turns yaml.v3's 1-based column (in runes) into a byte offset.
func byteCol(line string, col int) int {
	n := 0
	for i := range line {
		if n == col-1 {
			return i
		}
		n++
	}
	return len(line)
}

// scalarEnd is the byte column just after the flow scalar starting at
// start in line: its closing quote, or the end of a plain scalar.
func scalarEnd(line string, start int) int {
	if start >= len(line) {
		return len(line)
	}
	switch q := line[start]; q {
	case '"', '\'':
		for i := start + 1; i < len(line); i++ {
			switch {
			case q == '"' && line[i] == '\\':
				i++
			case q == '\'' && line[i] == '\'' && i+1 < len(line) && line[i+1] == '\'':
				i++
			case line[i] == q:
				return i + 1
			}
		}
		return len(line)
	}
	i := start
	for i < len(line) && !strings.ContainsRune(",]}\n", rune(line[i])) && !(line[i] == ' ' && i+1 < len(line) && line[i+1] == '#') {
		i++
	}
	for i > start && (line[i-1] == ' ' || line[i-1] == '\t') {
		i--
	}
	return i
}

var plainValue = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// quote writes a value as a flow list item: plain when it is a name,
// double-quoted otherwise (hosts with ports, paths).
func quote(v string) string {
	if plainValue.MatchString(v) {
		return v
	}
	return strconv.Quote(v)
}

func flowList(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = quote(v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// agent adds capability entries to one agent mapping.
func (p *patcher) agent(agent *yaml.Node, order []string, caps map[string][]string) error {
	capsKey := mapKey(agent, "capabilities")
	list := mapValue(agent, "capabilities")
	keyIndent := agent.Content[0].Column - 1
	if list == nil || list.Kind == yaml.ScalarNode && list.Tag == "!!null" {
		// No capabilities: a block after the agent's last line (or in
		// place of an empty "capabilities:").
		var b strings.Builder
		if capsKey == nil {
			fmt.Fprintf(&b, "%scapabilities:\n", strings.Repeat(" ", keyIndent))
		}
		for _, c := range order {
			fmt.Fprintf(&b, "%s  - %s: %s\n", strings.Repeat(" ", keyIndent), c, flowList(caps[c]))
		}
		at := p.lastLine(agent)
		if capsKey != nil {
			at = capsKey.Line
		}
		p.insertLines(at, b.String())
		return nil
	}
	if list.Kind != yaml.SequenceNode {
		return errdefs.New(errdefs.InvalidArgument, "%s:%d: the capabilities of this agent are not a list; add the learned lines by hand", p.file, list.Line)
	}
	if list.Style&yaml.FlowStyle != 0 {
		if len(list.Content) > 0 {
			return errdefs.New(errdefs.InvalidArgument, "%s:%d: this agent's capabilities are written as a flow list; write them as a block list (one \"- \" item per line) to apply what was learned, or add the lines by hand", p.file, list.Line)
		}
		// capabilities: [] becomes a block list.
		line, col, ok := p.closing(list)
		if !ok || line != list.Line {
			return errdefs.New(errdefs.InvalidArgument, "%s:%d: cannot read this agent's capabilities", p.file, list.Line)
		}
		l := p.lines[line-1]
		start := byteCol(l, list.Column)
		for start > 0 && (l[start-1] == ' ' || l[start-1] == '\t') {
			start--
		}
		p.edits = append(p.edits, edit{line: line, col: start, del: col + 1 - start, seq: len(p.edits)})
		var b strings.Builder
		for _, c := range order {
			fmt.Fprintf(&b, "%s  - %s: %s\n", strings.Repeat(" ", keyIndent), c, flowList(caps[c]))
		}
		p.insertLines(line, b.String())
		return nil
	}
	// A block list: each capability joins its item, or a new item comes
	// after the last one, at the items' indentation.
	dash := list.Content[0].Column - 3 // "- " before the item's key
	if dash < 0 {
		dash = 0
	}
	var added strings.Builder
	for _, c := range order {
		var item *yaml.Node
		for _, it := range list.Content {
			if it.Kind == yaml.MappingNode && len(it.Content) == 2 && it.Content[0].Value == c {
				item = it
			}
		}
		if item == nil {
			fmt.Fprintf(&added, "%s- %s: %s\n", strings.Repeat(" ", dash), c, flowList(caps[c]))
			continue
		}
		if err := p.extend(item.Content[1], caps[c]); err != nil {
			return err
		}
	}
	if added.Len() > 0 {
		p.insertLines(p.lastLine(list.Content[len(list.Content)-1]), added.String())
	}
	return nil
}

// extend adds values to the list v of a capability item.
func (p *patcher) extend(v *yaml.Node, vals []string) error {
	if v.Kind != yaml.SequenceNode {
		return errdefs.New(errdefs.InvalidArgument, "%s:%d: this capability is not a list; add the learned entries by hand", p.file, v.Line)
	}
	if v.Style&yaml.FlowStyle != 0 {
		q := make([]string, len(vals))
		for i, s := range vals {
			q[i] = quote(s)
		}
		text := strings.Join(q, ", ")
		if len(v.Content) == 0 {
			line, col, ok := p.closing(v)
			if !ok {
				return errdefs.New(errdefs.InvalidArgument, "%s:%d: cannot find the end of this list", p.file, v.Line)
			}
			p.insertAt(line, col, text)
			return nil
		}
		// Right after the last entry, so a trailing comma stays valid.
		last := v.Content[len(v.Content)-1]
		if last.Kind != yaml.ScalarNode {
			return errdefs.New(errdefs.InvalidArgument, "%s:%d: this list holds more than names; add the learned entries by hand", p.file, v.Line)
		}
		l := p.lines[last.Line-1]
		p.insertAt(last.Line, scalarEnd(l, byteCol(l, last.Column)), ", "+text)
		return nil
	}
	last := v.Content[len(v.Content)-1]
	indent := last.Column - 3
	var b strings.Builder
	for _, s := range vals {
		fmt.Fprintf(&b, "%s- %s\n", strings.Repeat(" ", max(indent, 0)), quote(s))
	}
	p.insertLines(p.lastLine(last), b.String())
	return nil
}

// verify parses the patched text and checks every suggestion is now
// allowed.
func verify(out []byte, file string, sugg []Suggestion) error {
	m, err := manifest.Parse(bytes.NewReader(out), file)
	if err != nil {
		return errdefs.New(errdefs.Internal, "%s: the learned lines would make it invalid (%v); add them by hand", file, err)
	}
	byName := map[string]manifest.ResolvedAgent{}
	for _, a := range m.Resolve(manifest.DaemonDefaults{}) {
		byName[a.Name] = a
	}
	for _, s := range sugg {
		c := byName[s.Agent].Capabilities
		var have []string
		switch s.Capability {
		case manifest.CapNetworkAccess:
			have = c.NetworkAccess
		case manifest.CapFilesystemRead:
			have = c.FilesystemRead
		case manifest.CapFilesystemWrite:
			have = c.FilesystemWrite
		case manifest.CapBusPublish:
			have = c.BusPublish
		case manifest.CapBusSubscribe:
			have = c.BusSubscribe
		case manifest.CapLLMAccess:
			have = c.LLMAccess
		}
		want := s.Value
		if strings.HasPrefix(s.Capability, "filesystem.") {
			want = strings.TrimPrefix(want, "./")
		}
		if !slices.Contains(have, want) {
			return errdefs.New(errdefs.Internal, "%s: applying %s %s to %s did not take; add it by hand", file, s.Capability, s.Value, s.Agent)
		}
	}
	return nil
}
