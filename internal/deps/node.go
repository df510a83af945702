package deps

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/runtimes"
)

// Node lock files npm ci installs from, in npm's order of preference.
var nodeLocks = []string{"npm-shrinkwrap.json", "package-lock.json"}

// installNode runs npm ci for src in a copy of its package.json, lock and
// .npmrc, and returns the node_modules it made.
func (b *Builder) installNode(ctx context.Context, projectDir string, src *Source, ip runtimes.Interpreter, stage string) (string, LayerInfo, error) {
	var info LayerInfo
	full := filepath.Join(projectDir, filepath.FromSlash(src.File))
	dir := filepath.Dir(full)
	pj, err := os.ReadFile(full)
	if err != nil {
		return "", info, err
	}
	names, err := packageDeps(src.File, pj)
	if err != nil {
		return "", info, err
	}
	lock := ""
	for _, l := range nodeLocks {
		if _, err := os.Stat(filepath.Join(dir, l)); err == nil {
			lock = l
			break
		}
	}
	if lock == "" {
		return "", info, errdefs.WithHint(sourceErr(src, "no package-lock.json beside it: Cortex installs Node packages with npm ci, from the lock only"),
			"run npm install (or npm install --package-lock-only) in "+dir+" and keep the package-lock.json it writes")
	}
	for _, f := range []string{filepath.Base(full), lock, ".npmrc"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if errors.Is(err, fs.ErrNotExist) && f == ".npmrc" {
			continue
		}
		if err != nil {
			return "", info, err
		}
		if err := os.WriteFile(filepath.Join(stage, f), data, 0o600); err != nil {
			return "", info, err
		}
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", info, errdefs.WithHint(errdefs.New(errdefs.FailedPrecondition, "%s: no npm on PATH to install it", src.File), "install npm (Debian, Ubuntu: apt-get install npm)")
	}
	args := []string{"ci", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"}
	if !src.Scripts {
		args = append(args, "--ignore-scripts")
	}
	cctx, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, npm, args...)
	// npm inherits the environment: it reads .npmrc and npm_config_*
	// itself. Install scripts (when allowed) run with the node on PATH.
	cmd.Dir = stage
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", info, ctx.Err()
		}
		return "", info, npmError(src, lock, out.String(), err)
	}
	nm := filepath.Join(stage, "node_modules")
	if err := os.MkdirAll(nm, 0o755); err != nil {
		return "", info, err
	}
	info.Packages = nodePackages(nm)
	mods := map[string][]string{}
	for _, n := range names {
		mods[n] = []string{n}
	}
	if err := b.checkImports(ctx, src, importCheck{interp: ip.Path, dir: stage, modules: mods}); err != nil {
		return "", info, err
	}
	return nm, info, nil
}

var (
	npmNotFound  = regexp.MustCompile(`(?m)404 Not Found - GET \S+ - '?([^'\s]+)`)
	npmNoVersion = regexp.MustCompile(`(?m)No matching version found for (\S+)`)
	npmIntegrity = regexp.MustCompile(`(?m)EINTEGRITY.*?(?:for )?(\S+)?`)
	npmOutOfSync = regexp.MustCompile(`(?m)can only install packages when your package\.json and package-lock\.json .* are in sync`)
	npmMissing   = regexp.MustCompile(`(?m)Missing: (\S+) from lock file`)
)

// npmError turns a failed npm ci into an error naming the file and the
// package.
func npmError(src *Source, lock, out string, runErr error) error {
	switch {
	case npmOutOfSync.MatchString(out):
		pkg := ""
		if m := npmMissing.FindStringSubmatch(out); m != nil {
			pkg = m[1] + ": "
		}
		return errdefs.WithHint(sourceErr(src, "%snot in %s: the lock is out of date", pkg, lock), "run npm install to update "+lock)
	case npmNoVersion.MatchString(out):
		return sourceErr(src, "%s: no matching version in the npm registry", npmNoVersion.FindStringSubmatch(out)[1])
	case npmNotFound.MatchString(out):
		return sourceErr(src, "%s: not found in the npm registry", npmNotFound.FindStringSubmatch(out)[1])
	case strings.Contains(out, "EINTEGRITY"):
		pkg := ""
		if m := npmIntegrity.FindStringSubmatch(out); m != nil && m[1] != "" {
			pkg = m[1] + ": "
		}
		return errdefs.WithHint(sourceErr(src, "%sintegrity check failed: the download does not match %s", pkg, lock),
			"check the registry npm uses (.npmrc, npm_config_registry), or update the lock (npm install)")
	}
	return sourceErr(src, "npm ci failed (%v): %s", runErr, tail(out, 8))
}

// nodePackages lists the packages npm installed, from its hidden lock
// (node_modules/.package-lock.json).
func nodePackages(nm string) []Package {
	data, err := os.ReadFile(filepath.Join(nm, ".package-lock.json"))
	if err != nil {
		return nil
	}
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
			Name    string `json:"name"`
		} `json:"packages"`
	}
	if json.Unmarshal(data, &lock) != nil {
		return nil
	}
	var out []Package
	for p, v := range lock.Packages {
		name := v.Name
		if name == "" {
			i := strings.LastIndex(p, "node_modules/")
			if i < 0 {
				continue
			}
			name = p[i+len("node_modules/"):]
		}
		out = append(out, Package{Name: name, Version: v.Version})
	}
	return out
}
