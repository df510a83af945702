package manifest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/strictyaml"
	"go.yaml.in/yaml/v3"
)

// MaxSize is the largest manifest Parse reads.
const MaxSize = 1 << 20

// ExtensionPrefix starts top-level keys that Parse ignores ("x-common:"),
// so that values shared through anchors have a place to be written.
const ExtensionPrefix = "x-"

// FileNames are the names Load looks for in a project directory, in order.
var FileNames = []string{"cortex.yaml", "cortex.yml"}

// Parse decodes a cortex.yaml read from r; source names it in problems
// ("cortex.yaml"). It checks structure: YAML syntax, one document, known
// fields only, no duplicate keys, the right YAML type for every field,
// capability items shaped as one-key maps, quantities. The meaning of the
// values is Validate's job.
//
// The manifest is non-nil whenever the YAML itself parsed, even when
// problems were found, so Validate can still run on it (it stays silent
// about fields Parse already reported). The error is a Problems listing
// every problem, or an I/O error from r.
func Parse(r io.Reader, source string) (*Manifest, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", source, err)
	}
	if len(data) > MaxSize {
		return nil, Problems{{File: source, Msg: fmt.Sprintf("the manifest is larger than %d KiB", MaxSize>>10),
			Fix: "keep cortex.yaml to declarations; put data in files the agents read"}}
	}
	root, err := strictyaml.Parse(data, source)
	if err != nil {
		var es strictyaml.Errors
		if errors.As(err, &es) {
			return nil, fromStrict(es, source)
		}
		return nil, err
	}
	m := &Manifest{Source: source, pos: map[string]Position{"": {Line: 1, Col: 1}}, bad: map[string]bool{}}
	d := &decoder{m: m}
	if root != nil {
		d.root(root)
	}
	return m, d.probs.err()
}

// Check is Parse followed by Validate on whatever parsed: it returns the
// manifest (nil only when the YAML itself did not parse) and every problem
// of both, as one Problems sorted by position. This is what a user-facing
// "validate" wants.
func Check(r io.Reader, source string, opts ValidateOptions) (*Manifest, error) {
	m, err := Parse(r, source)
	if m == nil {
		return nil, err
	}
	var all Problems
	if err != nil {
		if !errors.As(err, &all) {
			return m, err
		}
		all = slices.Clone(all)
	}
	if err := m.Validate(opts); err != nil {
		var ps Problems
		errors.As(err, &ps)
		all = append(all, ps...)
	}
	return m, all.err()
}

// Load reads the manifest at path. When path is a directory it reads
// <dir>/cortex.yaml, else <dir>/cortex.yml. A missing file is an
// errdefs.NotFound error; problems in the file are Problems as from Parse.
func Load(path string) (*Manifest, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, statError(path, err)
	}
	if fi.IsDir() {
		dir := path
		path = ""
		for _, name := range FileNames {
			p := filepath.Join(dir, name)
			if _, err := os.Stat(p); err == nil {
				path = p
				break
			}
		}
		if path == "" {
			return nil, errdefs.WithHint(errdefs.New(errdefs.NotFound, "no cortex.yaml in %s", dir),
				"create "+filepath.Join(dir, "cortex.yaml")+" or pass the manifest's path")
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, statError(path, err)
	}
	defer f.Close()
	return Parse(f, path)
}

func statError(path string, err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errdefs.New(errdefs.NotFound, "manifest %s does not exist", path)
	case errors.Is(err, os.ErrPermission):
		return errdefs.Wrap(errdefs.PermissionDenied, fmt.Errorf("open manifest: %w", err))
	}
	return fmt.Errorf("open manifest: %w", err)
}

// Pos returns where the field at fieldPath was written: the key for a map
// field ("agents[1].resources.mem_limit", "agents[0].env.ICE_URL",
// "agents[0].capabilities.network.access"), the item for a list element
// ("agents[1]", "agents[0].capabilities.network.access[2]",
// "agents[0].capabilities[3]"). "" is the start of the document. It returns
// the zero Position for fields not written or manifests not from Parse.
func (m *Manifest) Pos(fieldPath string) Position {
	return m.pos[fieldPath]
}

// written reports whether Parse saw the field.
func (m *Manifest) written(fieldPath string) bool {
	_, ok := m.pos[fieldPath]
	return ok
}

// posNear returns the position of field, or of its nearest written
// ancestor (so "missing" problems point at the enclosing block).
func (m *Manifest) posNear(field string) Position {
	for {
		if p, ok := m.pos[field]; ok {
			return p
		}
		if field == "" {
			return Position{}
		}
		field = parent(field)
	}
}

// parent strips the last ".key" or "[i]" from a field path.
func parent(field string) string {
	i := strings.LastIndexAny(field, ".[")
	if i < 0 {
		return ""
	}
	return field[:i]
}

// isBad reports whether Parse reported field or one of its ancestors.
func (m *Manifest) isBad(field string) bool {
	for {
		if m.bad[field] {
			return true
		}
		if field == "" {
			return false
		}
		field = parent(field)
	}
}

type decoder struct {
	m     *Manifest
	probs Problems
}

func (d *decoder) at(field string, n *yaml.Node) {
	if d.m.pos == nil {
		d.m.pos = map[string]Position{}
	}
	if _, ok := d.m.pos[field]; !ok {
		d.m.pos[field] = Position{Line: n.Line, Col: n.Column}
	}
}

// add reports a problem about field, at the position recorded for it.
func (d *decoder) add(field, msg, fix string) {
	d.m.bad[field] = true
	d.probs = append(d.probs, Problem{File: d.m.Source, Pos: d.m.posNear(field), Field: field, Msg: msg, Fix: fix})
}

func (d *decoder) strict(es strictyaml.Errors) {
	for _, e := range es {
		d.m.bad[e.Field] = true
	}
	d.probs = append(d.probs, fromStrict(es, d.m.Source)...)
}

func (d *decoder) typeErr(field string, n *yaml.Node, want, fix string) {
	d.add(field, fmt.Sprintf("expected %s, found %s", want, strictyaml.Describe(n)), fix)
}

// value follows aliases and refuses custom tags. ok is false when n is null
// (the field counts as not set) or was refused.
func (d *decoder) value(field string, n *yaml.Node) (*yaml.Node, bool) {
	n = strictyaml.Deref(n)
	if strictyaml.IsNull(n) {
		return n, false
	}
	if !strictyaml.StandardTag(n) {
		d.add(field, fmt.Sprintf("tag %s is not supported", n.Tag), "remove the tag")
		return n, false
	}
	return n, true
}

// pairs returns the entries of the map n, or reports that n is not a map.
func (d *decoder) pairs(field string, n *yaml.Node, want, fix string) ([]strictyaml.Pair, bool) {
	if n.Kind != yaml.MappingNode {
		d.typeErr(field, n, want, fix)
		return nil, false
	}
	ps, errs := strictyaml.Pairs(n, field)
	d.strict(errs)
	return ps, true
}

// str decodes a string field; any scalar counts as its literal text.
func (d *decoder) str(field string, n *yaml.Node) (string, bool) {
	n, ok := d.value(field, n)
	if !ok {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() == strictyaml.TagBinary {
		d.typeErr(field, n, "a string", "")
		return "", false
	}
	return n.Value, true
}

func (d *decoder) int(field string, n *yaml.Node, example string) (int64, bool) {
	n, ok := d.value(field, n)
	if !ok {
		return 0, false
	}
	var i int64
	if n.Kind != yaml.ScalarNode {
		d.typeErr(field, n, "a whole number", "write e.g. "+example)
		return 0, false
	}
	if n.ShortTag() != strictyaml.TagInt || n.Decode(&i) != nil {
		msg := fmt.Sprintf("%q is not a whole number", n.Value)
		if strings.Trim(n.Value, "+-0123456789") == "" && n.ShortTag() != strictyaml.TagStr {
			msg = fmt.Sprintf("%s is too large", n.Value)
		}
		d.add(field, msg, "write an integer without quotes, e.g. "+example)
		return 0, false
	}
	return i, true
}

func (d *decoder) bool(field string, n *yaml.Node) (bool, bool) {
	n, ok := d.value(field, n)
	if !ok {
		return false, false
	}
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != strictyaml.TagBool || n.Decode(&b) != nil {
		d.typeErr(field, n, "true or false", "write true or false without quotes")
		return false, false
	}
	return b, true
}

// decode decodes the map n into the struct v with strictyaml (the plain
// blocks: the root, defaults, resources, an agent, a budget), recording
// where every field was written and reporting problems at their keys. The
// fields whose shape a struct cannot say go to field.
func (d *decoder) decode(n *yaml.Node, field string, v any) {
	d.strict(strictyaml.DecodeNode(n, field, v, strictyaml.Options{
		AtKey: true,
		Seen:  d.at,
		Field: d.field,
		Skip:  func(key string) bool { return strings.HasPrefix(key, ExtensionPrefix) }, // a place for anchors, as in Compose files
	}))
}

// field decodes the fields strictyaml cannot: version (a number gets its
// own fix), capability lists, env, the agents list and the two counts
// that must fit 32 bits.
func (d *decoder) field(field string, n *yaml.Node, ptr any) bool {
	switch p := ptr.(type) {
	case *Capabilities:
		*p = d.capabilities(field, n)
	case *[]EnvVar:
		*p = d.env(field, n)
	case *[]Agent:
		*p = d.agents(field, n)
	case **int: // max_restarts
		*p = d.maxRestarts(field, n)
	case **Dependencies:
		*p = d.dependencies(field, n)
	case *int: // llm.budget.requests_per_minute
		i, ok := d.int(field, n, "60")
		if ok && int64(int32(i)) != i {
			d.add(field, fmt.Sprintf("%d is out of range", i), "write e.g. 60")
			return true
		}
		*p = int(i)
	case *string:
		if field != "version" {
			return false
		}
		d.version(n)
	default:
		return false
	}
	return true
}

func (d *decoder) root(n *yaml.Node) {
	d.at("", n)
	if n.Kind != yaml.MappingNode {
		d.typeErr("", n, "a map of version, project, defaults, global_capabilities, agents", `start with version: "1"`)
		return
	}
	d.decode(n, "", d.m)
}

func (d *decoder) version(n *yaml.Node) {
	n, ok := d.value("version", n)
	if !ok {
		return
	}
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case strictyaml.TagStr:
			d.m.Version = n.Value
			return
		case strictyaml.TagInt, strictyaml.TagFloat:
			d.add("version", fmt.Sprintf("expected the string %q, found the number %s", Version, n.Value), fmt.Sprintf("write version: %q, with the quotes", Version))
			return
		}
	}
	d.typeErr("version", n, "a string", fmt.Sprintf("write version: %q", Version))
}

func (d *decoder) maxRestarts(field string, n *yaml.Node) *int {
	i, ok := d.int(field, n, "3")
	if !ok {
		return nil
	}
	if int64(int32(i)) != i {
		d.add(field, fmt.Sprintf("%d is out of range", i), "write a small count, e.g. 3")
		return nil
	}
	v := int(i)
	return &v
}

func (d *decoder) agents(field string, n *yaml.Node) []Agent {
	n, ok := d.value(field, n)
	if !ok {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.typeErr(field, n, "a list of agents", `start each agent with "- name: ..."`)
		return nil
	}
	agents := make([]Agent, 0, len(n.Content))
	for i, item := range n.Content {
		agents = append(agents, d.agent(strictyaml.Index(field, i), item))
	}
	return agents
}

func (d *decoder) agent(field string, n *yaml.Node) Agent {
	var a Agent
	d.at(field, n)
	n, ok := d.value(field, n)
	if !ok {
		if strictyaml.IsNull(n) {
			d.add(field, "empty list item", `start the agent with "- name: ..."`)
		}
		return a
	}
	if n.Kind != yaml.MappingNode {
		fix := "write an agent as a map: - name: worker"
		if n.Kind == yaml.ScalarNode {
			fix = "write - name: " + toLabel(n.Value)
		}
		d.typeErr(field, n, "a map with name, entrypoint and more", fix)
		return a
	}
	d.decode(n, field, &a)
	return a
}

func (d *decoder) env(field string, n *yaml.Node) []EnvVar {
	n, ok := d.value(field, n)
	if !ok {
		return nil
	}
	ps, ok := d.pairs(field, n, "a map of NAME: value", `write env: {NAME: "value"}`)
	if !ok {
		return nil
	}
	env := make([]EnvVar, 0, len(ps))
	for _, p := range ps {
		f := strictyaml.Join(field, p.Key)
		d.at(f, p.KeyNode)
		v, ok := d.value(f, p.Value)
		if !ok {
			if strictyaml.IsNull(v) {
				env = append(env, EnvVar{Name: p.Key})
			}
			continue
		}
		if v.Kind != yaml.ScalarNode || v.ShortTag() == strictyaml.TagBinary {
			d.typeErr(f, v, "a single value", "quote it to pass it as text")
			continue
		}
		env = append(env, EnvVar{Name: p.Key, Value: v.Value})
	}
	return env
}

// dependencies decodes an agent's dependencies: a path, "none", or a map
// {file, scripts}.
func (d *decoder) dependencies(field string, n *yaml.Node) *Dependencies {
	n, ok := d.value(field, n)
	if !ok {
		if strictyaml.IsNull(n) {
			d.add(field, "no value", "write dependencies: requirements.txt, or dependencies: none")
		}
		return nil
	}
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == strictyaml.TagStr:
		if n.Value == DependenciesNone {
			return &Dependencies{None: true}
		}
		return &Dependencies{File: n.Value}
	case n.Kind == yaml.MappingNode:
		dep := &Dependencies{}
		d.decode(n, field, dep)
		if dep.File == "" && !d.m.isBad(strictyaml.Join(field, "file")) {
			d.add(strictyaml.Join(field, "file"), "missing", "write file: package.json")
		}
		return dep
	}
	d.typeErr(field, n, "a file path, none, or a map {file, scripts}", "write dependencies: requirements.txt")
	return nil
}

func (d *decoder) budget(field string, n *yaml.Node) *LLMBudget {
	if n.Kind != yaml.MappingNode {
		d.typeErr(field, n, "a map", "write llm.budget: {tokens_per_day: 100000, dollars_per_day: 5, requests_per_minute: 60}")
		return nil
	}
	b := &LLMBudget{}
	d.decode(n, field, b)
	return b
}

// strList decodes a list of scalars; an empty list gives a non-nil empty
// slice (declared, nothing allowed).
func (d *decoder) strList(field string, n *yaml.Node, example string) []string {
	if n.Kind != yaml.SequenceNode {
		fix := "write e.g. " + example
		if n.Kind == yaml.ScalarNode {
			fix = "write a list: [" + strconv.Quote(n.Value) + "]"
		}
		d.typeErr(field, n, "a list", fix)
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, item := range n.Content {
		f := strictyaml.Index(field, i)
		d.at(f, item)
		if s, ok := d.str(f, item); ok {
			out = append(out, s)
		} else if strictyaml.IsNull(item) {
			d.add(f, "empty list item", "remove it, or write a value")
		}
	}
	return out
}
