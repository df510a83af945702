package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// node describes one path of a test tree.
type node struct {
	path    string
	content string      // regular file content
	perm    fs.FileMode // regular file permission bits; 0 means 0644
	dir     bool
	link    string // symlink target
}

// writeTree creates nodes under root in the given order, creating parents
// as needed.
func writeTree(t testing.TB, root string, nodes []node) {
	t.Helper()
	for _, n := range nodes {
		p := filepath.Join(root, filepath.FromSlash(n.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch {
		case n.dir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case n.link != "":
			if err := os.Symlink(n.link, p); err != nil {
				t.Fatal(err)
			}
		default:
			perm := n.perm
			if perm == 0 {
				perm = 0o644
			}
			if err := os.WriteFile(p, []byte(n.content), perm); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, perm); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// createBytes packs dir and returns the bundle bytes and index.
func createBytes(t testing.TB, opts CreateOptions) ([]byte, *Index) {
	t.Helper()
	var buf bytes.Buffer
	idx, err := Create(context.Background(), &buf, opts)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return buf.Bytes(), idx
}

// writeBundle writes data to a file in a fresh temp dir and returns its path.
func writeBundle(t testing.TB, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "test.cortex")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// listTree describes every path under root: "dir 0755", "file 0644
// <content>", "symlink -> target", with its owner when withOwner.
func listTree(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "symlink -> " + target
		case info.IsDir():
			out[rel] = fmt.Sprintf("dir %04o", info.Mode().Perm())
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = fmt.Sprintf("file %04o %s", info.Mode().Perm(), b)
		default:
			out[rel] = "special " + info.Mode().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// area is a directory tree around an extraction destination, so a test
// can tell whether anything was written outside dest:
//
//	<root>/outside/keep.txt
//	<root>/sandbox/keep.txt
//	<root>/sandbox/bundles/          (dest's parent)
//	<root>/sandbox/bundles/dest      (dest, not created)
//
// Hostile archives aim their paths at <root>/outside.
type area struct {
	root, dest string
}

func newArea(t testing.TB) area {
	t.Helper()
	root := t.TempDir()
	writeTree(t, root, []node{
		{path: "outside/keep.txt", content: "keep"},
		{path: "sandbox/keep.txt", content: "keep"},
		{path: "sandbox/bundles", dir: true},
	})
	return area{root: root, dest: filepath.Join(root, "sandbox", "bundles", "dest")}
}

// snapshot lists the whole area but dest.
func (a area) snapshot(t testing.TB) map[string]string {
	t.Helper()
	m := listTree(t, a.root)
	for k := range m {
		if k == "sandbox/bundles/dest" || strings.HasPrefix(k, "sandbox/bundles/dest/") {
			delete(m, k)
		}
	}
	return m
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// setTimes gives every path under root the mtime and atime at.
func setTimes(t testing.TB, root string, at time.Time) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		return os.Chtimes(p, at, at)
	})
	if err != nil {
		t.Fatal(err)
	}
}
