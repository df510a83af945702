// Package runtimes maps manifest runtime names (python3.11, nodejs20, ...) to
// interpreters on the host, and owns the embedded bootstrap shims that import
// an agent's entrypoint and call it. It does not start processes; the
// sandbox does.
package runtimes

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/manifest"
)

//go:embed shims/bootstrap.py shims/bootstrap.js
var shims embed.FS

// Interpreter is a discovered interpreter for one runtime.
type Interpreter struct {
	Runtime string `json:"runtime"`
	Path    string `json:"path"`    // the executable, symlinks resolved
	Version string `json:"version"` // as the interpreter reports it, e.g. 3.11.2 or v20.20.2
	// Prefix is the installation prefix the sandbox must make visible
	// (e.g. /usr for /usr/bin/python3.11, /root/.pyenv/versions/3.12.1).
	Prefix string `json:"prefix"`
	// ABI is what compiled extensions must be built for: Python's SOABI
	// (cpython-311-x86_64-linux-gnu), Node's module ABI version (115).
	// Packages vendored for one interpreter (internal/deps) record it.
	ABI string `json:"abi,omitempty"`
}

// Registry discovers interpreters, honouring the daemon config's runtimes:
// overrides, and caches the answers.
type Registry struct {
	overrides map[string]string
	pyenvRoot string
	mu        sync.Mutex
	cache     map[string]result
}

// DefaultPyenvRoot is where pyenv keeps its Pythons when PYENV_ROOT is unset.
const DefaultPyenvRoot = "/root/.pyenv"

type result struct {
	ip  Interpreter
	err error
}

// NewRegistry returns a registry; overrides maps runtime name to an
// interpreter path (config runtimes:). pyenvRoot is where pyenv's Pythons
// are looked for (config.Env's PYENV_ROOT; "" is DefaultPyenvRoot).
func NewRegistry(overrides map[string]string, pyenvRoot string) *Registry {
	if pyenvRoot == "" {
		pyenvRoot = DefaultPyenvRoot
	}
	return &Registry{overrides: overrides, pyenvRoot: pyenvRoot, cache: map[string]result{}}
}

// Lookup finds the interpreter for runtime. For a range ("python>=3.11")
// it is the newest runtime of the range the host has, and the returned
// Interpreter's Runtime names it.
func (r *Registry) Lookup(runtime string) (Interpreter, error) {
	if manifest.IsRuntimeRange(runtime) {
		return r.lookupRange(runtime)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if res, ok := r.cache[runtime]; ok {
		return res.ip, res.err
	}
	ip, err := r.discover(runtime)
	r.cache[runtime] = result{ip, err}
	return ip, err
}

func (r *Registry) lookupRange(rng string) (Interpreter, error) {
	cands, _ := manifest.RuntimeCandidates(rng)
	var errs []string
	for _, c := range cands {
		ip, err := r.Lookup(c)
		if err == nil {
			return ip, nil
		}
		errs = append(errs, err.Error())
	}
	return Interpreter{}, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "no interpreter for %s: %s", rng, strings.Join(errs, "; ")),
		fmt.Sprintf("install one of %s, or set runtimes.<name>: /path/to/interpreter in /etc/cortex/config.yaml", strings.Join(cands, ", ")))
}

// Available reports whether runtime has an interpreter, as a validation
// error that says how to fix it.
func (r *Registry) Available(runtime string) error {
	_, err := r.Lookup(runtime)
	return err
}

// All returns every known runtime's lookup result, for doctor and version.
func (r *Registry) All() map[string]error {
	out := map[string]error{}
	for _, rt := range manifest.Runtimes {
		out[rt] = r.Available(rt)
	}
	return out
}

func (r *Registry) discover(runtime string) (Interpreter, error) {
	var want string // version the interpreter must report
	var candidates []string
	switch {
	case manifest.IsPython(runtime):
		want = strings.TrimPrefix(runtime, "python") // 3.11
		exe := "python" + want
		candidates = []string{"/usr/bin/" + exe, "/usr/local/bin/" + exe}
		candidates = append(candidates, globNewest(filepath.Join(r.pyenvRoot, "versions", want+".*", "bin", exe))...)
		candidates = append(candidates, pathLookups(exe)...)
	case manifest.IsNode(runtime):
		want = strings.TrimPrefix(runtime, "nodejs") // 20
		candidates = []string{"/usr/bin/node", "/usr/local/bin/node", "/usr/bin/nodejs", "/usr/local/bin/node" + want}
		candidates = append(candidates, globNewest("/usr/local/lib/nodejs/node-v"+want+".*/bin/node")...)
		candidates = append(candidates, globNewest("/root/.nvm/versions/node/v"+want+".*/bin/node")...)
		candidates = append(candidates, pathLookups("node", "nodejs", "node"+want)...)
	default:
		return Interpreter{}, errdefs.New(errdefs.InvalidArgument, "unknown runtime %q; use one of %s", runtime, strings.Join(manifest.Runtimes, ", "))
	}
	if p, ok := r.overrides[runtime]; ok && p != "" {
		candidates = []string{p}
	}
	var tried []string
	seen := map[string]bool{}
	for _, c := range candidates {
		real, err := filepath.EvalSymlinks(c)
		if err != nil || seen[real] {
			continue
		}
		seen[real] = true
		if !isELF(real) {
			continue // pyenv shims and wrapper scripts would not work in a sandbox
		}
		ver, abi, err := version(runtime, real)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s (%v)", c, err))
			continue
		}
		if !versionMatches(runtime, ver, want) {
			tried = append(tried, fmt.Sprintf("%s is %s", c, ver))
			continue
		}
		return Interpreter{Runtime: runtime, Path: real, Version: ver, Prefix: prefixOf(real), ABI: abi}, nil
	}
	msg := fmt.Sprintf("no %s interpreter found", runtime)
	if len(tried) > 0 {
		msg += " (tried " + strings.Join(tried, ", ") + ")"
	}
	return Interpreter{}, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "%s", msg),
		fmt.Sprintf("install it, or set runtimes.%s: /path/to/interpreter in /etc/cortex/config.yaml", runtime))
}

func pathLookups(names ...string) []string {
	var out []string
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// globNewest returns matches of pattern, newest version first.
func globNewest(pattern string) []string {
	m, _ := filepath.Glob(pattern)
	sort.Sort(sort.Reverse(sort.StringSlice(m)))
	return m
}

func isELF(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [4]byte
	if _, err := f.Read(b[:]); err != nil {
		return false
	}
	return bytes.Equal(b[:], []byte{0x7f, 'E', 'L', 'F'})
}

// version asks the interpreter at path for its version and ABI.
func version(runtime, path string) (ver, abi string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var cmd *exec.Cmd
	if manifest.IsPython(runtime) {
		cmd = exec.CommandContext(ctx, path, "-S", "-c", "import sys,sysconfig;print('%d.%d.%d'%sys.version_info[:3]);print(sysconfig.get_config_var('SOABI') or '')")
	} else {
		cmd = exec.CommandContext(ctx, path, "-e", "console.log(process.version);console.log(process.versions.modules||'')")
	}
	out, err := cmd.Output()
	if err != nil {
		return "", "", err
	}
	ver, abi, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(ver), strings.TrimSpace(abi), nil
}

func versionMatches(runtime, ver, want string) bool {
	if manifest.IsPython(runtime) {
		return ver == want || strings.HasPrefix(ver, want+".")
	}
	return strings.HasPrefix(ver, "v"+want+".")
}

// prefixOf returns the installation prefix of an interpreter at
// <prefix>/bin/<exe>.
func prefixOf(exe string) string {
	return filepath.Dir(filepath.Dir(exe))
}

// ShimDir is where Install puts the shims, relative to the share dir.
const ShimDir = "shims"

// Install writes the embedded shims under shareDir/shims, replacing stale
// copies. It is idempotent.
func Install(shareDir string) (string, error) {
	dir := filepath.Join(shareDir, ShimDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	entries, _ := shims.ReadDir("shims")
	for _, e := range entries {
		data, _ := shims.ReadFile("shims/" + e.Name())
		dst := filepath.Join(dir, e.Name())
		if old, err := os.ReadFile(dst); err == nil && bytes.Equal(old, data) {
			continue
		}
		tmp := dst + ".tmp"
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			return "", err
		}
		if err := os.Rename(tmp, dst); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// Argv returns the command line that runs entrypoint with ip, using the
// shims in shimDir.
func Argv(ip Interpreter, shimDir, entrypoint string) []string {
	if manifest.IsPython(ip.Runtime) {
		return []string{ip.Path, "-s", "-u", "-B", filepath.Join(shimDir, "bootstrap.py"), entrypoint}
	}
	return []string{ip.Path, filepath.Join(shimDir, "bootstrap.js"), entrypoint}
}
