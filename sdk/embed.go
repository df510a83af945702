// Package sdk holds the agent SDKs (Python: python/cortex, Node:
// node/cortex) and embeds them, so the daemon can write them out once and
// mount them read-only into every sandbox, with python/ on PYTHONPATH and
// node/ on NODE_PATH. It owns no logic beyond writing the files; it must
// not depend on other Cortex packages.
package sdk

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

//go:embed python/README.md python/cortex/*.py python/cortex/py.typed
//go:embed node/README.md node/cortex/*.js node/cortex/package.json
var files embed.FS

// FS is the SDK tree: python/cortex/..., node/cortex/..., and a README in
// python/ and node/.
func FS() fs.FS { return files }

// PythonPath is the directory to put on PYTHONPATH after WriteTo(dir).
func PythonPath(dir string) string { return filepath.Join(dir, "python") }

// NodePath is the directory to put on NODE_PATH after WriteTo(dir), so
// require("cortex/bus") resolves to NODE_PATH/cortex/bus.js.
func NodePath(dir string) string { return filepath.Join(dir, "node") }

// Digest identifies the embedded SDK content (sha256 over paths and bytes),
// so a daemon can skip rewriting an unchanged tree.
func Digest() string {
	h := sha256.New()
	for _, p := range paths() {
		b, _ := files.ReadFile(p)
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func paths() []string {
	var out []string
	_ = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// WriteTo writes the SDK tree under dir (created if missing): directories
// 0755, files 0644, each file replaced atomically, so agents already
// running never read a half-written file.
func WriteTo(dir string) error {
	for _, p := range paths() {
		b, err := files.ReadFile(p)
		if err != nil {
			return fmt.Errorf("read embedded sdk %s: %w", p, err)
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("write sdk: %w", err)
		}
		tmp, err := os.CreateTemp(filepath.Dir(dst), ".sdk-*")
		if err != nil {
			return fmt.Errorf("write sdk %s: %w", dst, err)
		}
		_, werr := tmp.Write(b)
		cerr := tmp.Close()
		if err := firstErr(werr, cerr, os.Chmod(tmp.Name(), 0o644)); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("write sdk %s: %w", dst, err)
		}
		if err := os.Rename(tmp.Name(), dst); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("write sdk %s: %w", dst, err)
		}
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
