// Package depstest builds the Python wheels the dependency tests install
// (the Python package index is out of reach of the tests): cxpure (pure
// Python), cxfast (a C extension) and cxnet (reaches the network when
// imported), with `pip wheel` from local source directories, once per
// source and interpreter, cached under the user's cache directory. It
// must only be imported by tests.
package depstest

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cortexrt/cortex/internal/kerneltest"
	"github.com/cortexrt/cortex/internal/runtimes"
)

//go:embed all:src
var sources embed.FS

// Wheels is a directory of built wheels.
type Wheels struct {
	// Dir holds the .whl files: serve it with PIP_FIND_LINKS.
	Dir string
	// SHA256 is each wheel's hash by distribution name (for hash-pinned
	// requirements).
	SHA256 map[string]string
	// Files is each wheel's file name by distribution name.
	Files map[string]string
}

// Versions of the test distributions.
const (
	PureVersion = "1.2.0"
	FastVersion = "0.3.0"
	NetVersion  = "0.1.0"
)

var (
	mu    sync.Mutex
	built = map[string]*Wheels{}
)

// Build returns the test wheels for ip, building them with ip's pip the
// first time (the C extension needs the interpreter's headers and a C
// compiler: scripts/deps.sh installs python3-dev, python3-setuptools,
// python3-wheel and gcc). A host without them skips the test (fails it
// under CORTEX_TEST_PRIVILEGED=1).
func Build(t testing.TB, ip runtimes.Interpreter) *Wheels {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", ip.Path, ip.Version, ip.ABI)
	_ = fs.WalkDir(sources, "src", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := sources.ReadFile(p)
			fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
			h.Write(b)
		}
		return nil
	})
	key := hex.EncodeToString(h.Sum(nil))[:16]
	if w := built[key]; w != nil {
		return w
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	out := filepath.Join(cache, "cortex-test", "wheels-"+key)
	if _, err := os.Stat(filepath.Join(out, ".complete")); err != nil {
		if err := build(ip, out); err != nil {
			kerneltest.Missing(t, fmt.Sprintf("cannot build the test wheels with %s (scripts/deps.sh installs python3-dev, python3-setuptools, python3-wheel, gcc): %v", ip.Path, err))
		}
	}
	w := &Wheels{Dir: out, SHA256: map[string]string{}, Files: map[string]string{}}
	ents, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".whl") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(out, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		name, _, _ := strings.Cut(e.Name(), "-")
		w.SHA256[name] = hex.EncodeToString(sum[:])
		w.Files[name] = e.Name()
	}
	for _, n := range []string{"cxpure", "cxfast", "cxnet"} {
		if w.Files[n] == "" {
			t.Fatalf("no %s wheel in %s", n, out)
		}
	}
	built[key] = w
	return w
}

func build(ip runtimes.Interpreter, out string) error {
	src, err := os.MkdirTemp("", "cortex-test-wheel-src-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(src)
	err = fs.WalkDir(sources, "src", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(src, strings.TrimPrefix(p, "src"))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := sources.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		return err
	}
	tmp := out + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	args := []string{"-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--disable-pip-version-check", "-w", tmp}
	for _, n := range []string{"cxpure", "cxfast", "cxnet"} {
		args = append(args, filepath.Join(src, n))
	}
	cmd := exec.Command(ip.Path, args...)
	cmd.Env = append(os.Environ(), "PIP_NO_INDEX=1", "PIP_FIND_LINKS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pip wheel: %v\n%s", err, b)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		return err
	}
	os.RemoveAll(out)
	return os.Rename(tmp, out)
}

// Env is the environment that makes pip install from w only: the
// process's own, with PIP_FIND_LINKS and PIP_NO_INDEX set.
func (w *Wheels) Env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PIP_FIND_LINKS=") && !strings.HasPrefix(kv, "PIP_NO_INDEX=") && !strings.HasPrefix(kv, "PIP_INDEX_URL=") {
			env = append(env, kv)
		}
	}
	return append(env, "PIP_FIND_LINKS="+w.Dir, "PIP_NO_INDEX=1")
}
