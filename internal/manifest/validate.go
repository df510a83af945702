package manifest

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/cortexrt/cortex/internal/strictyaml"
)

// ValidateOptions are the host facts Validate checks against. The zero
// value checks the manifest alone.
type ValidateOptions struct {
	// HostCPUs: every cpu_limit must be <= this; 0 = don't check.
	HostCPUs int
	// RuntimeAvailable reports whether a runtime can run here; nil = don't
	// check. Its error text explains, as "what; how to fix" (e.g. "no
	// python3.12 interpreter found; install it or set runtimes.python3.12 in
	// /etc/cortex/config.yaml").
	RuntimeAvailable func(runtime string) error
	// ProjectDir, if set, is the directory filesystem.* paths resolve
	// against: they must not escape it, also through symlinks that exist.
	ProjectDir string
	// DefaultRuntime is the daemon's default runtime, which agents with no
	// runtime in the manifest get. When set, their entrypoint is checked
	// against it and RuntimeAvailable is asked about it; when empty such an
	// entrypoint may have either the Python or the Node form.
	DefaultRuntime string
}

// Limits on values, beyond which the kernel or the runtime cannot follow.
const (
	MinCPU    = 0.01    // cores; a CFS quota under 1ms of a 100ms period
	MinMemory = 4 << 20 // bytes
	MaxPids   = 4194304 // the kernel's PID_MAX_LIMIT
	maxName   = 63      // DNS label
	maxAlias  = 64      // llm.access alias
	maxChan   = 128     // bus channel name
	maxBudget = 1 << 53 // exact in a float64
)

// ReservedEnv are the environment variables the runtime sets for every agent;
// a manifest may not set them. Other CORTEX_* names are allowed.
var ReservedEnv = []string{"CORTEX_PROJECT", "CORTEX_AGENT", "CORTEX_RUN", "CORTEX_BUS"}

// RestartPolicies lists the valid restart policies.
var RestartPolicies = []RestartPolicy{RestartNo, RestartOnFailure, RestartAlways}

var (
	envName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	pyIdent     = `[A-Za-z_][A-Za-z0-9_]*`
	pyEntry     = regexp.MustCompile(`^` + pyIdent + `(\.` + pyIdent + `)*:` + pyIdent + `$`)
	jsExport    = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*$`)
	jsPathChars = regexp.MustCompile(`^[A-Za-z0-9_.@+/-]+$`)
	channelTok  = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	aliasName   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
)

var pyKeywords = map[string]bool{
	"False": true, "None": true, "True": true, "and": true, "as": true, "assert": true, "async": true,
	"await": true, "break": true, "class": true, "continue": true, "def": true, "del": true, "elif": true,
	"else": true, "except": true, "finally": true, "for": true, "from": true, "global": true, "if": true,
	"import": true, "in": true, "is": true, "lambda": true, "nonlocal": true, "not": true, "or": true,
	"pass": true, "raise": true, "return": true, "try": true, "while": true, "with": true, "yield": true,
}

// Validate checks what the values mean: version, names (DNS labels, agent
// names unique), runtimes, entrypoints against the agent's runtime,
// resource ranges, restart policies, env names, every capability entry, and
// the host facts in opts. It returns Problems (all of them, sorted by
// position) or nil. It says nothing more about fields Parse already
// reported, so a caller may show Parse's and Validate's problems together.
func (m *Manifest) Validate(opts ValidateOptions) error {
	v := &validator{m: m, opts: opts, asked: map[string]bool{}}
	v.manifest()
	return v.probs.err()
}

type validator struct {
	m     *Manifest
	opts  ValidateOptions
	probs Problems
	asked map[string]bool // runtime availability problems already reported, by field
}

func (v *validator) add(field, msg, fix string) {
	if v.m.isBad(field) {
		return
	}
	v.probs = append(v.probs, Problem{File: v.m.Source, Pos: v.m.posNear(field), Field: field, Msg: msg, Fix: fix})
}

// addErr reports a "what; fix" error text.
func (v *validator) addErr(field string, err error) {
	msg, fix := splitFix(err.Error())
	v.add(field, msg, fix)
}

func (v *validator) manifest() {
	m := v.m
	switch {
	case m.Version == "" && !m.written("version"):
		v.add("version", "missing", fmt.Sprintf("add version: %q as the first line", Version))
	case m.Version != Version:
		v.add("version", fmt.Sprintf("%q is not a supported version", m.Version), fmt.Sprintf("write version: %q", Version))
	}
	if m.Project == "" {
		v.add("project", "missing", "add project: my-project (lowercase letters, digits and '-')")
	} else {
		v.dnsLabel("project", m.Project)
	}
	v.defaults()
	v.capabilities("global_capabilities", m.GlobalCapabilities, true)
	if len(m.Agents) == 0 {
		v.add("agents", "at least one agent is required", "add agents: [{name: worker, entrypoint: agents.worker:main}]")
	}
	first := map[string]int{}
	for i := range m.Agents {
		v.agent(i, first)
	}
	if m.LLM.Replay != "" || m.written("llm.replay") {
		if _, err := checkRelPath(m.LLM.Replay); err != nil {
			v.addErr("llm.replay", err)
		}
	}
}

func (v *validator) defaults() {
	d := v.m.Defaults
	if d.Runtime != "" {
		v.runtime("defaults.runtime", d.Runtime)
	}
	v.resources("defaults.resources", d.Resources)
	v.restartPolicy("defaults.restart_policy", d.RestartPolicy)
	v.maxRestarts("defaults.max_restarts", d.MaxRestarts)
}

func (v *validator) dnsLabel(field, s string) {
	if labelProblem(s) == "" {
		return
	}
	v.add(field, fmt.Sprintf("%q is not a DNS label", s),
		fmt.Sprintf("use 1 to 63 lowercase letters, digits and '-', not starting or ending with '-', e.g. %s", toLabel(s)))
}

// toLabel makes a DNS label out of s, for fixes.
func toLabel(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	out := b.String()
	if len(out) > maxName {
		out = out[:maxName]
	}
	out = strings.Trim(out, "-")
	if out == "" {
		return "my-name"
	}
	return out
}

func (v *validator) runtime(field, rt string) bool {
	if ValidRuntime(rt) {
		return true
	}
	if lang, floor, ok := strings.Cut(rt, RuntimeRangeOp); ok && (lang == "python" || lang == "nodejs") {
		var known []string
		for _, r := range Runtimes {
			if strings.HasPrefix(r, lang) {
				known = append(known, strings.TrimPrefix(r, lang))
			}
		}
		v.add(field, fmt.Sprintf("%q: %s is not a known %s version", rt, floor, lang),
			fmt.Sprintf("start the range at one of %s, e.g. %s>=%s", strings.Join(known, ", "), lang, known[0]))
		return false
	}
	v.add(field, fmt.Sprintf("%q is not a runtime", rt), strictyaml.DidYouMean(rt, Runtimes, "use one of "+strings.Join(Runtimes, ", ")+", or a range such as python>=3.11 (the newest installed Python from 3.11 up)"))
	return false
}

func (v *validator) agent(i int, first map[string]int) {
	m := v.m
	a := m.Agents[i]
	f := strictyaml.Index("agents", i)
	at := func(k string) string { return strictyaml.Join(f, k) }

	switch {
	case a.Name == "":
		v.add(at("name"), "missing", "add name: worker (a DNS label, unique in the project)")
	case labelProblem(a.Name) != "":
		v.dnsLabel(at("name"), a.Name)
	default:
		if j, dup := first[a.Name]; dup {
			where := strictyaml.Index("agents", j)
			if p := m.Pos(where); p.Line > 0 {
				where += fmt.Sprintf(" (line %d)", p.Line)
			}
			v.add(at("name"), fmt.Sprintf("%q is already the name of %s", a.Name, where), "give each agent a unique name")
		} else {
			first[a.Name] = i
		}
	}

	// The runtime the agent gets, and where it was decided.
	rt, rtField, valid := a.Runtime, at("runtime"), true
	switch {
	case a.Runtime != "":
		valid = v.runtime(rtField, a.Runtime)
	case m.Defaults.Runtime != "":
		rt, rtField = m.Defaults.Runtime, "defaults.runtime"
		valid = ValidRuntime(rt) // reported once, in defaults()
	default:
		rt, rtField = v.opts.DefaultRuntime, f
		valid = rt != "" && ValidRuntime(rt)
	}
	if valid && v.opts.RuntimeAvailable != nil && !v.asked[rtField] {
		v.asked[rtField] = true
		if err := v.opts.RuntimeAvailable(rt); err != nil {
			msg, fix := splitFix(err.Error())
			if rtField == f {
				msg = "the daemon's default runtime " + rt + ": " + msg
			}
			v.add(rtField, msg, fix)
		}
	}

	ef := at("entrypoint")
	switch {
	case a.Entrypoint == "":
		v.add(ef, "missing", "add entrypoint: agents.worker:main (Python) or agents/worker.js:main (Node)")
	case rt == "" || !valid:
		pyFix, nodeFix := pythonEntrypoint(a.Entrypoint), nodeEntrypoint(a.Entrypoint)
		if pyFix != "" && nodeFix != "" {
			v.add(ef, fmt.Sprintf("%q is neither a Python (module.path:function) nor a Node (path/file.js:export) entrypoint", a.Entrypoint), pyFix)
		}
	case IsNode(rt):
		if fix := nodeEntrypoint(a.Entrypoint); fix != "" {
			v.add(ef, fmt.Sprintf("%q is not a Node entrypoint (runtime %s)", a.Entrypoint, rt), fix)
		}
	default:
		if fix := pythonEntrypoint(a.Entrypoint); fix != "" {
			v.add(ef, fmt.Sprintf("%q is not a Python entrypoint (runtime %s)", a.Entrypoint, rt), fix)
		}
	}

	v.resources(at("resources"), a.Resources)
	v.restartPolicy(at("restart_policy"), a.RestartPolicy)
	v.maxRestarts(at("max_restarts"), a.MaxRestarts)
	v.capabilities(at("capabilities"), a.Capabilities, false)
	v.env(at("env"), a.Env)
	v.dependencies(at("dependencies"), a.Dependencies, rt, valid)
}

// dependencies checks an agent's dependencies: a relative path inside
// the project, of the agent's language; scripts for Node only.
func (v *validator) dependencies(f string, dep *Dependencies, rt string, rtValid bool) {
	if dep == nil || dep.None || dep.File == "" && v.m.isBad(strictyaml.Join(f, "file")) {
		return
	}
	ff := f
	if v.m.written(strictyaml.Join(f, "file")) {
		ff = strictyaml.Join(f, "file")
	}
	clean, err := checkRelPath(dep.File)
	if err != nil {
		v.addErr(ff, err)
		return
	}
	if clean == "." || strings.HasSuffix(dep.File, "/") {
		v.add(ff, fmt.Sprintf("%q is a directory", dep.File), "name the file: requirements.txt, pyproject.toml or package.json")
		return
	}
	kind := DependencyKind(clean)
	if rtValid && rt != "" {
		switch {
		case kind == DepsNode && IsPython(rt):
			v.add(ff, fmt.Sprintf("%q is a Node dependency file, but the agent runs %s", dep.File, rt), "name a requirements file or pyproject.toml")
			return
		case kind == DepsPython && IsNode(rt):
			v.add(ff, fmt.Sprintf("%q is not a package.json, but the agent runs %s", dep.File, rt), "name the agent's package.json (with its package-lock.json beside it)")
			return
		}
	}
	if dep.Scripts && kind != DepsNode {
		v.add(strictyaml.Join(f, "scripts"), "install scripts are a Node setting", "remove scripts: pip installs wheels, which run no scripts")
	}
}

// pythonEntrypoint checks "dotted.module:function" and returns "" or how
// to fix it.
func pythonEntrypoint(s string) string {
	if pyEntry.MatchString(s) {
		for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == ':' }) {
			if pyKeywords[part] {
				return fmt.Sprintf("%q is a Python keyword; rename the module or function", part)
			}
		}
		return ""
	}
	mod, fn, hasFn := strings.Cut(s, ":")
	if !hasFn {
		fn = "main"
	}
	mod = strings.TrimPrefix(mod, "./")
	mod = strings.TrimSuffix(mod, ".py")
	mod = strings.ReplaceAll(mod, "/", ".")
	if guess := mod + ":" + fn; guess != s && pyEntry.MatchString(guess) {
		return "write module.path:function, e.g. " + guess
	}
	return "write module.path:function, e.g. agents.worker:main"
}

// nodeEntrypoint checks "relative/path/file.js:export" and returns "" or
// how to fix it.
func nodeEntrypoint(s string) string {
	fix := "write path/to/file.js:export, e.g. agents/worker.js:main"
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		if hasJSExt(s) {
			return "add the export: " + s + ":main"
		}
		return fix
	}
	file, export := s[:i], s[i+1:]
	if pyEntry.MatchString(s) && !strings.Contains(file, "/") && !hasJSExt(file) {
		return "write path/to/file.js:export, e.g. " + strings.ReplaceAll(file, ".", "/") + ".js:" + export
	}
	switch {
	case !jsExport.MatchString(export):
		return fix
	case strings.HasPrefix(file, "/"):
		return "the file is relative to the project directory: " + fix
	case !jsPathChars.MatchString(file):
		return fix
	}
	for j, seg := range strings.Split(file, "/") {
		if seg == ".." || seg == "" || (seg == "." && j > 0) {
			return "the file must be inside the project, without .. or empty segments: " + fix
		}
	}
	if !hasJSExt(file) {
		return "the file must end in .js, .mjs or .cjs: " + fix
	}
	return ""
}

func hasJSExt(file string) bool {
	return strings.HasSuffix(file, ".js") || strings.HasSuffix(file, ".mjs") || strings.HasSuffix(file, ".cjs")
}

func (v *validator) resources(f string, r Resources) {
	cpu, mem, pids := strictyaml.Join(f, "cpu_limit"), strictyaml.Join(f, "mem_limit"), strictyaml.Join(f, "pids_limit")
	if r.CPULimit != 0 || v.m.written(cpu) {
		c := r.CPULimit
		switch {
		case math.IsNaN(c) || math.IsInf(c, 0):
			v.add(cpu, fmt.Sprintf("%v is not a number of cores", c), "write e.g. 0.5")
		case c < MinCPU:
			v.add(cpu, fmt.Sprintf("%s is below the minimum of %v core", fmtFloat(c), MinCPU), "write at least 0.01, e.g. 0.5")
		case v.opts.HostCPUs > 0 && c > float64(v.opts.HostCPUs):
			v.add(cpu, fmt.Sprintf("%s cores is more than this host has (%d)", fmtFloat(c), v.opts.HostCPUs),
				fmt.Sprintf("write at most %d", v.opts.HostCPUs))
		}
	}
	if (r.MemLimit != 0 || v.m.written(mem)) && r.MemLimit < MinMemory {
		v.add(mem, fmt.Sprintf("%s is below the minimum of 4Mi", r.MemLimit), "write e.g. 512Mi")
	}
	if r.PidsLimit != 0 || v.m.written(pids) {
		switch {
		case r.PidsLimit < 1:
			v.add(pids, fmt.Sprintf("%d is below the minimum of 1", r.PidsLimit), "write e.g. 128")
		case r.PidsLimit > MaxPids:
			v.add(pids, fmt.Sprintf("%d is above the kernel's maximum of %d", r.PidsLimit, MaxPids), "write e.g. 1024")
		}
	}
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func (v *validator) restartPolicy(f string, p RestartPolicy) {
	if p == "" && !v.m.written(f) {
		return
	}
	if slices.Contains(RestartPolicies, p) {
		return
	}
	fix := "use no, on-failure or always"
	switch p {
	case "false":
		fix = `write restart_policy: "no"`
	case "true":
		fix = "use on-failure or always"
	default:
		names := []string{"no", "on-failure", "always"}
		fix = strictyaml.DidYouMean(string(p), names, fix)
	}
	v.add(f, fmt.Sprintf("%q is not a restart policy", p), fix)
}

func (v *validator) maxRestarts(f string, n *int) {
	if n != nil && *n < 0 {
		v.add(f, fmt.Sprintf("%d is negative", *n), "write 0 or more")
	}
}

func (v *validator) env(f string, env []EnvVar) {
	seen := map[string]bool{}
	for _, e := range env {
		ef := strictyaml.Join(f, e.Name)
		switch {
		case !envName.MatchString(e.Name):
			v.add(ef, fmt.Sprintf("%q is not an environment variable name", e.Name), "use letters, digits and _, not starting with a digit")
		case slices.Contains(ReservedEnv, e.Name):
			v.add(ef, e.Name+" is set by the runtime", "remove it: Cortex sets "+strings.Join(ReservedEnv, ", ")+" itself")
		case seen[e.Name]:
			v.add(ef, "set twice", "keep one")
		case strings.ContainsRune(e.Value, 0):
			v.add(ef, "the value contains a NUL byte", "remove it")
		}
		seen[e.Name] = true
	}
}

func (v *validator) capabilities(f string, c Capabilities, global bool) {
	at := func(name string) string { return strictyaml.Join(f, name) }
	for i, h := range c.NetworkAccess {
		if _, err := ParseHostRule(h); err != nil {
			v.addErr(strictyaml.Index(at(CapNetworkAccess), i), err)
		}
	}
	v.paths(at(CapFilesystemRead), c.FilesystemRead)
	v.paths(at(CapFilesystemWrite), c.FilesystemWrite)
	if c.Logging != "" || v.m.written(at(CapLogging)) {
		if c.Logging != LoggingStrict && c.Logging != LoggingDefault {
			v.add(at(CapLogging), fmt.Sprintf("%q is not a logging mode", c.Logging),
				strictyaml.DidYouMean(c.Logging, []string{LoggingStrict, LoggingDefault}, "use strict or default"))
		}
	}
	if c.BusBroker != "" {
		if global {
			if err := checkBroker(c.BusBroker); err != nil {
				v.addErr(at(CapBusBroker), err)
			}
		} else {
			v.add(at(CapBusBroker), "bus.broker is a project-wide setting", "move it to global_capabilities")
		}
	}
	v.channels(at(CapBusPublish), c.BusPublish, true)
	v.channels(at(CapBusSubscribe), c.BusSubscribe, true)
	v.channels(at(CapBusDurable), c.BusDurable, false)
	for i, a := range c.LLMAccess {
		if len(a) > maxAlias || !aliasName.MatchString(a) {
			v.add(strictyaml.Index(at(CapLLMAccess), i), fmt.Sprintf("%q is not an alias name", a),
				"use letters, digits, '_', '.' and '-', starting with a letter or digit, e.g. fast")
		}
	}
	if b := c.LLMBudget; b != nil {
		bf := at(CapLLMBudget)
		if b.TokensPerDay < 0 {
			v.add(strictyaml.Join(bf, "tokens_per_day"), fmt.Sprintf("%d is negative", b.TokensPerDay), "write 0 (no limit) or more")
		}
		if d := b.DollarsPerDay; d < 0 || math.IsNaN(d) || math.IsInf(d, 0) || d > maxBudget {
			v.add(strictyaml.Join(bf, "dollars_per_day"), fmt.Sprintf("%v is not an amount", d), "write 0 (no limit) or more, e.g. 5")
		}
		if b.RequestsPerMinute < 0 {
			v.add(strictyaml.Join(bf, "requests_per_minute"), fmt.Sprintf("%d is negative", b.RequestsPerMinute), "write 0 (no limit) or more")
		}
	}
}

func (v *validator) paths(f string, paths []string) {
	for i, p := range paths {
		pf := strictyaml.Index(f, i)
		clean, err := checkRelPath(p)
		if err != nil {
			v.addErr(pf, err)
			continue
		}
		if v.opts.ProjectDir != "" {
			if err := resolveInside(v.opts.ProjectDir, clean); err != nil {
				v.addErr(pf, err)
			}
		}
	}
}

// channels checks bus channel names; with wildcards, "*" and a trailing
// ".*" are allowed too (see ChannelMatches).
func (v *validator) channels(f string, names []string, wildcards bool) {
	for i, n := range names {
		if err := checkChannel(n, wildcards); err != nil {
			v.addErr(strictyaml.Index(f, i), err)
		}
	}
}

func checkChannel(n string, wildcards bool) error {
	fix := "use dot-separated names of letters, digits, '_' and '-', e.g. analysis-results"
	if wildcards {
		fix += `, or "*" for all, or a prefix and ".*" (results.*)`
		if n == "*" {
			return nil
		}
		n = strings.TrimSuffix(n, ".*")
	} else if strings.Contains(n, "*") {
		return fmt.Errorf("%q has a wildcard; bus.durable names whole channels, without *", n)
	}
	if len(n) > maxChan {
		return fmt.Errorf("%q is longer than %d characters; %s", n, maxChan, fix)
	}
	for _, tok := range strings.Split(n, ".") {
		if !channelTok.MatchString(tok) {
			return fmt.Errorf("%q is not a channel name; %s", n, fix)
		}
	}
	return nil
}

// BrokerSchemes are the URL schemes bus.broker accepts.
var BrokerSchemes = []string{"redis", "rediss", "nats"}

func checkBroker(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("%q is not a broker URL; write e.g. redis://host:6379 or nats://host:4222", redact(s))
	}
	if !slices.Contains(BrokerSchemes, u.Scheme) {
		return fmt.Errorf("scheme %q is not supported; use redis://, rediss:// or nats://", u.Scheme)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q is not a number from 1 to 65535; write e.g. redis://host:6379", p)
		}
	}
	return nil
}

// redact hides a password in a URL-ish string before it goes into a message.
func redact(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		return "…@" + s[i+1:]
	}
	return s
}
