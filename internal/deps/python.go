package deps

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/runtimes"
)

// installTimeout bounds one pip or npm run.
const installTimeout = 15 * time.Minute

// pipFor returns the command that runs pip for ip: the interpreter's own
// pip module, else a pip on PATH told to install for ip (--python, pip
// 22.3 and later).
func pipFor(ctx context.Context, ip runtimes.Interpreter) ([]string, error) {
	try := func(argv ...string) bool {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return exec.CommandContext(cctx, argv[0], append(argv[1:], "--version")...).Run() == nil
	}
	if try(ip.Path, "-m", "pip") {
		return []string{ip.Path, "-m", "pip"}, nil
	}
	var tried []string
	for _, name := range []string{"pip3", "pip"} {
		p, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		if try(p, "--python", ip.Path) {
			return []string{p, "--python", ip.Path}, nil
		}
		tried = append(tried, p)
	}
	msg := fmt.Sprintf("no pip for %s (%s): it has no pip module", ip.Runtime, ip.Path)
	if len(tried) > 0 {
		msg += " and " + strings.Join(tried, ", ") + " cannot install for it (pip 22.3 or later is needed)"
	}
	return nil, errdefs.WithHint(errdefs.New(errdefs.FailedPrecondition, "%s", msg),
		"install pip for that interpreter (Debian, Ubuntu: apt-get install python3-pip; else "+ip.Path+" -m ensurepip)")
}

// installPython installs src for ip into stage/site and returns it with
// what it holds.
func (b *Builder) installPython(ctx context.Context, projectDir string, src *Source, ip runtimes.Interpreter, stage string) (string, LayerInfo, error) {
	var info LayerInfo
	full := filepath.Join(projectDir, filepath.FromSlash(src.File))
	data, err := os.ReadFile(full)
	if err != nil {
		return "", info, err
	}
	reqFile := full
	if path.Base(src.File) == PyProject {
		list, err := pyprojectDeps(src.File, data)
		if err != nil {
			return "", info, err
		}
		reqFile = filepath.Join(stage, "pyproject-requirements.txt")
		if err := os.WriteFile(reqFile, []byte(strings.Join(list, "\n")+"\n"), 0o600); err != nil {
			return "", info, err
		}
		data = nil
	}
	pip, err := pipFor(ctx, ip)
	if err != nil {
		return "", info, err
	}
	site := filepath.Join(stage, "site")
	args := append(pip[1:], "install", "--target", site, "--no-compile", "--only-binary=:all:",
		"--disable-pip-version-check", "--no-input", "--no-warn-script-location", "--progress-bar", "off")
	if hashPinned(data) {
		args = append(args, "--require-hashes")
	}
	args = append(args, "-r", reqFile)
	cctx, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, pip[0], args...)
	// pip inherits the environment: it reads pip.conf and its PIP_*
	// variables itself.
	cmd.Dir = filepath.Dir(full)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", info, ctx.Err()
		}
		return "", info, pipError(src, stderr.String(), err)
	}
	if err := os.MkdirAll(site, 0o755); err != nil {
		return "", info, err
	}
	pkgs, mods, err := pythonDists(site)
	if err != nil {
		return "", info, err
	}
	info.Packages = pkgs
	if err := b.checkImports(ctx, src, importCheck{python: true, interp: ip.Path, dir: site, modules: mods}); err != nil {
		return "", info, err
	}
	return site, info, nil
}

var (
	pipNoMatch    = regexp.MustCompile(`(?m)No matching distribution found for (\S+)`)
	pipNoVersion  = regexp.MustCompile(`(?m)Could not find a version that satisfies the requirement (\S+)`)
	pipHashHead   = regexp.MustCompile(`(?m)THESE PACKAGES DO NOT MATCH THE HASHES`)
	pipHashLine   = regexp.MustCompile(`(?m)^\s+(\S+) from .*:\s*$\s+Expected sha256 (\S+)(?:\s+Got\s+(\S+))?`)
	pipHashNeeded = regexp.MustCompile(`(?m)Hashes are required in --require-hashes mode`)
	pipNotPinned  = regexp.MustCompile(`(?m)must have their versions pinned with ==`)
	pipReqLine    = regexp.MustCompile(`(?m)^\s{4}(\S+)`)
	pipNoBinary   = regexp.MustCompile(`(?m)(\S+) .*only-binary|none of the files .* are wheels`)
)

// pipError turns a failed pip run into an error naming the file and the
// package, with pip's own words.
func pipError(src *Source, out string, runErr error) error {
	out = strings.TrimSpace(out)
	switch {
	case pipHashHead.MatchString(out):
		if m := pipHashLine.FindStringSubmatch(out); m != nil {
			got := ""
			if m[3] != "" {
				got = ", the download has " + m[3]
			}
			return errdefs.WithHint(sourceErr(src, "%s: hash mismatch: the file pins sha256 %s%s", m[1], m[2], got),
				"check where pip downloads from (PIP_INDEX_URL, PIP_FIND_LINKS, pip.conf), or pin the right hash")
		}
		return sourceErr(src, "hash mismatch: %s", tail(out, 6))
	case pipHashNeeded.MatchString(out):
		name := "some requirements"
		if i := pipHashNeeded.FindStringIndex(out); i != nil {
			if m := pipReqLine.FindStringSubmatch(out[i[1]:]); m != nil {
				name = m[1]
			}
		}
		return errdefs.WithHint(sourceErr(src, "%s: no --hash: once one requirement pins a hash, every one must", name),
			"pin every requirement with --hash (pip-compile --generate-hashes, uv pip compile --generate-hashes)")
	case pipNotPinned.MatchString(out):
		name := ""
		if i := pipNotPinned.FindStringIndex(out); i != nil {
			if m := pipReqLine.FindStringSubmatch(out[i[1]:]); m != nil {
				name = m[1] + ": "
			}
		}
		return errdefs.WithHint(sourceErr(src, "%snot pinned with ==; a requirements file with hashes pins every version", name), "write name==version --hash=sha256:...")
	}
	if m := pipNoMatch.FindStringSubmatch(out); m != nil {
		return errdefs.WithHint(sourceErr(src, "%s: no matching distribution (no wheel of it for this interpreter where pip looks)", m[1]),
			"check the name and version; Cortex installs wheels only: if the package has none for this Python, build one (pip wheel) and serve it (PIP_FIND_LINKS); pip looks where pip.conf and PIP_INDEX_URL say")
	}
	if m := pipNoVersion.FindStringSubmatch(out); m != nil {
		return sourceErr(src, "%s: no matching distribution", m[1])
	}
	_ = pipNoBinary
	return sourceErr(src, "pip failed (%v): %s", runErr, tail(out, 8))
}

// pythonDists lists the distributions installed in site (from their
// .dist-info METADATA) and the top-level modules each provides (from
// RECORD), by distribution name.
func pythonDists(site string) ([]Package, map[string][]string, error) {
	ents, err := os.ReadDir(site)
	if err != nil {
		return nil, nil, err
	}
	var pkgs []Package
	mods := map[string][]string{}
	for _, e := range ents {
		if !e.IsDir() || !strings.HasSuffix(e.Name(), ".dist-info") {
			continue
		}
		dir := filepath.Join(site, e.Name())
		p := Package{}
		if f, err := os.Open(filepath.Join(dir, "METADATA")); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				l := sc.Text()
				if l == "" {
					break
				}
				if v, ok := strings.CutPrefix(l, "Name: "); ok {
					p.Name = v
				} else if v, ok := strings.CutPrefix(l, "Version: "); ok {
					p.Version = v
				}
			}
			f.Close()
		}
		if p.Name == "" {
			name, ver, _ := strings.Cut(strings.TrimSuffix(e.Name(), ".dist-info"), "-")
			p = Package{Name: name, Version: ver}
		}
		pkgs = append(pkgs, p)
		record, _ := os.ReadFile(filepath.Join(dir, "RECORD"))
		seen := map[string]bool{}
		for _, line := range strings.Split(string(record), "\n") {
			file, _, _ := strings.Cut(line, ",")
			if m := topModule(file); m != "" && !seen[m] {
				seen[m] = true
				mods[p.Name] = append(mods[p.Name], m)
			}
		}
		sort.Strings(mods[p.Name])
	}
	return pkgs, mods, nil
}

// topModule returns the top-level importable module a RECORD path
// provides ("pkg/__init__.py" and "mod.py" and "ext.cpython-311-x86_64-
// linux-gnu.so" do; metadata, scripts, data and bundled libraries do not).
func topModule(file string) string {
	first, rest, nested := strings.Cut(file, "/")
	switch {
	case first == "" || strings.HasPrefix(first, "..") || strings.HasPrefix(first, "_") && !nested && !strings.HasSuffix(first, ".py"):
		return ""
	case strings.HasSuffix(first, ".dist-info"), strings.HasSuffix(first, ".data"), strings.HasSuffix(first, ".libs"), first == "bin", first == "__pycache__":
		return ""
	case nested:
		if rest == "__init__.py" || strings.HasPrefix(rest, "__init__.") {
			return first
		}
		return ""
	case strings.HasSuffix(first, ".py"):
		return strings.TrimSuffix(first, ".py")
	case strings.HasSuffix(first, ".so"):
		name, _, _ := strings.Cut(first, ".")
		return name
	}
	return ""
}

// importCheck is one run of the import check.
type importCheck struct {
	python  bool
	interp  string
	dir     string              // the layer (Python) or the staging dir holding node_modules (Node)
	modules map[string][]string // package -> modules to import
}

// importResult is one line the check script prints.
type importResult struct {
	Package string `json:"package"`
	Module  string `json:"module"`
	Error   string `json:"error"`
	Network bool   `json:"network"`
}

const pythonImportCheck = `
import json, site, sys, importlib, socket, errno, urllib.error
site.addsitedir(sys.argv[1])
NET = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ECONNREFUSED, errno.EADDRNOTAVAIL, errno.ENETDOWN}
def network(e):
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (socket.gaierror, socket.herror, ConnectionError, TimeoutError, urllib.error.URLError)):
            return True
        if isinstance(e, OSError) and e.errno in NET:
            return True
        e = e.__cause__ or e.__context__
    return False
for pkg, mods in json.loads(sys.argv[2]).items():
    for mod in mods:
        try:
            importlib.import_module(mod)
        except BaseException as e:
            print(json.dumps({"package": pkg, "module": mod, "error": "%s: %s" % (type(e).__name__, e), "network": network(e)}), flush=True)
`

const nodeImportCheck = `
const mods = JSON.parse(process.argv[1]);
const NET = new Set(['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH', 'ETIMEDOUT', 'ECONNRESET']);
function network(e) { for (let i = 0; e && i < 8; i++, e = e.cause) { if (NET.has(e.code)) return true; } return false; }
for (const [pkg, list] of Object.entries(mods)) {
  for (const mod of list) {
    try { await import(mod); } catch (e) {
      console.log(JSON.stringify({package: pkg, module: mod, error: String(e && e.message || e), network: network(e)}));
    }
  }
}
`

// checkImports imports every module of the layer with the target
// interpreter, with no network (a new network namespace where the host
// allows one): a package that needs the network when imported would fail
// every agent at start, since agents reach nothing until granted, so it
// is refused here, naming it. Other import failures are warnings.
func (b *Builder) checkImports(ctx context.Context, src *Source, c importCheck) error {
	if len(c.modules) == 0 {
		return nil
	}
	list, _ := json.Marshal(c.modules)
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var cmd *exec.Cmd
	if c.python {
		cmd = exec.CommandContext(cctx, c.interp, "-s", "-B", "-c", pythonImportCheck, c.dir, string(list))
	} else {
		cmd = exec.CommandContext(cctx, c.interp, "--input-type=module", "-e", nodeImportCheck, string(list))
	}
	cmd.Dir = c.dir
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=" + c.dir, "PYTHONDONTWRITEBYTECODE=1"}
	cmd.Env = env
	isolated := isolateNetwork(cmd)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && isolated && !errors.As(err, &exitErr) && ctx.Err() == nil {
		// The namespace could not be made here: check without it.
		b.logf("warning: %s: cannot isolate the network on this host (%v); the packages were imported with the host's network\n", src.File, err)
		cmd = exec.CommandContext(cctx, cmd.Path, cmd.Args[1:]...)
		cmd.Dir, cmd.Env = c.dir, env
		out.Reset()
		stderr.Reset()
		cmd.Stdout, cmd.Stderr = &out, &stderr
		err = cmd.Run()
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if cctx.Err() != nil {
			return sourceErr(src, "importing the installed packages took longer than 2 minutes (does one wait for the network?)")
		}
		b.logf("warning: %s: the import check failed (%v): %s\n", src.File, err, tail(stderr.String(), 4))
	}
	for _, line := range strings.Split(out.String(), "\n") {
		var r importResult
		if json.Unmarshal([]byte(line), &r) != nil || r.Package == "" {
			continue
		}
		if r.Network {
			return errdefs.WithHint(sourceErr(src, "%s: importing %s needs the network (%s); agents reach nothing until their manifest grants it, and imports come first",
				r.Package, r.Module, r.Error), "make the package connect when first used, not when imported, or pick another package")
		}
		b.logf("warning: %s: %s: import %s failed: %s\n", src.File, r.Package, r.Module, r.Error)
	}
	return nil
}
