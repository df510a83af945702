// Package runtimestest finds the interpreters tests run agents and SDK
// scripts with, the way the daemon finds them (internal/runtimes), so no
// test assumes this machine's interpreter paths or versions. A host
// without a Python or a Node interpreter skips the tests that need one
// (and fails them under CORTEX_TEST_PRIVILEGED=1, where scripts/deps.sh
// installs both). It must only be imported by tests.
package runtimestest

import (
	"fmt"
	"github.com/cortexrt/cortex/internal/config"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/cortexrt/cortex/internal/kerneltest"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/runtimes"
)

// Preference order: the versions CI has always run first, then newer,
// then older ones.
var (
	pythonOrder = []string{"python3.11", "python3.12", "python3.13", "python3.10"}
	nodeOrder   = []string{"nodejs20", "nodejs22", "nodejs18"}
)

var (
	once sync.Once
	reg  *runtimes.Registry
)

func registry() *runtimes.Registry {
	once.Do(func() { reg = runtimes.NewRegistry(nil, config.FromEnv().PyenvRoot) })
	return reg
}

// Python returns the Python interpreter tests use: the first of
// python3.11, 3.12, 3.13, 3.10 the host has. Its Runtime is the manifest
// name (python3.12), Path the executable.
func Python(t testing.TB) runtimes.Interpreter {
	t.Helper()
	return first(t, "Python", pythonOrder)
}

// Node returns the Node interpreter tests use: the first of nodejs20, 22,
// 18 the host has.
func Node(t testing.TB) runtimes.Interpreter {
	t.Helper()
	return first(t, "Node", nodeOrder)
}

// Pythons returns every Python runtime the host has, in manifest order,
// for tests that run once per supported version.
func Pythons(t testing.TB) []runtimes.Interpreter {
	t.Helper()
	var out []runtimes.Interpreter
	for _, rt := range manifest.Runtimes {
		if !manifest.IsPython(rt) {
			continue
		}
		if ip, err := registry().Lookup(rt); err == nil {
			out = append(out, ip)
		}
	}
	if len(out) == 0 {
		Python(t) // skips or fails with the reason
	}
	return out
}

func first(t testing.TB, lang string, order []string) runtimes.Interpreter {
	t.Helper()
	var tried []string
	for _, rt := range order {
		ip, err := registry().Lookup(rt)
		if err == nil {
			return ip
		}
		tried = append(tried, err.Error())
	}
	kerneltest.Missing(t, fmt.Sprintf("no %s interpreter (scripts/deps.sh installs one): %s", lang, strings.Join(tried, "; ")))
	return runtimes.Interpreter{}
}

// runtimeLine matches a manifest line naming one of the runtimes test
// manifests are written with.
var runtimeLine = regexp.MustCompile(`(?m)^(\s*(?:-\s+)?runtime:\s*)"?(python3\.11|nodejs20)"?\s*$`)

// HostManifest returns a test manifest with every "runtime: python3.11"
// and "runtime: nodejs20" line (the runtimes test manifests are written
// with) naming the runtime this host has instead (Python, Node). A
// manifest without such lines comes back unchanged.
func HostManifest(t testing.TB, manifest []byte) []byte {
	t.Helper()
	return runtimeLine.ReplaceAllFunc(manifest, func(line []byte) []byte {
		m := runtimeLine.FindSubmatch(line)
		rt := Python(t).Runtime
		if string(m[2]) == "nodejs20" {
			rt = Node(t).Runtime
		}
		return append(append([]byte(nil), m[1]...), rt...)
	})
}
