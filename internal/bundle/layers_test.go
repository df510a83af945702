package bundle

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/google/go-cmp/cmp"
)

var layerNodes = []node{
	{path: "pkg/__init__.py", content: "VALUE = 1\n"},
	{path: "pkg/__pycache__/__init__.cpython-311.pyc", content: "bytecode"},
	{path: "pkg/stray.pyc", content: "bytecode"},
	{path: "pkg/_native.so", content: "\x7fELF", perm: 0o755},
	{path: "pkg-1.0.dist-info/METADATA", content: "Name: pkg\nVersion: 1.0\n"},
	{path: "bin/tool", link: "../pkg/_native.so"},
}

func scan(t *testing.T, dir string) *Layer {
	t.Helper()
	l, err := ScanLayer(context.Background(), dir)
	if err != nil {
		t.Fatalf("ScanLayer: %v", err)
	}
	return l
}

// TestLayerDigest: a layer's digest depends on its tree only (not on
// mtimes or creation order), bytecode is left out, and any change of
// content, path, exec bit or link target changes it.
func TestLayerDigest(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeTree(t, a, layerNodes)
	rev := append([]node(nil), layerNodes...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	writeTree(t, b, rev)
	setTimes(t, b, time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC))
	la, lb := scan(t, a), scan(t, b)
	if la.Digest != lb.Digest || len(la.Digest) != 64 {
		t.Fatalf("digests %s and %s differ for the same tree", la.Digest, lb.Digest)
	}
	var paths []string
	for _, f := range la.Files {
		paths = append(paths, f.Path)
	}
	want := []string{"bin", "bin/tool", "pkg", "pkg-1.0.dist-info", "pkg-1.0.dist-info/METADATA", "pkg/__init__.py", "pkg/_native.so"}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Errorf("layer entries (-want +got):\n%s", diff)
	}
	for name, change := range map[string]func(string){
		"content": func(d string) { os.WriteFile(filepath.Join(d, "pkg/__init__.py"), []byte("VALUE = 2\n"), 0o644) },
		"exec":    func(d string) { os.Chmod(filepath.Join(d, "pkg/_native.so"), 0o644) },
		"link": func(d string) {
			os.Remove(filepath.Join(d, "bin/tool"))
			os.Symlink("../pkg/__init__.py", filepath.Join(d, "bin/tool"))
		},
		"path": func(d string) { os.Rename(filepath.Join(d, "pkg/__init__.py"), filepath.Join(d, "pkg/init.py")) },
	} {
		t.Run(name, func(t *testing.T) {
			d := t.TempDir()
			writeTree(t, d, layerNodes)
			change(d)
			if got := scan(t, d).Digest; got == la.Digest {
				t.Errorf("digest unchanged after a %s change", name)
			}
		})
	}
}

func TestLayerRefusals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes []node
		want  string
	}{
		{"link-out", []node{{path: "a/x", link: "../../etc/passwd"}}, "leaves the layer"},
		{"link-abs", []node{{path: "x", link: "/etc/passwd"}}, "absolute path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			writeTree(t, d, tc.nodes)
			_, err := ScanLayer(context.Background(), d)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errdefs.IsInvalidArgument(err) {
				t.Fatalf("err = %v, want InvalidArgument with %q", err, tc.want)
			}
		})
	}
}

// layeredProject packs a project with one layer and a meta file.
func layeredProject(t *testing.T, layerDir string) ([]byte, *Index, *Layer) {
	t.Helper()
	proj := t.TempDir()
	writeTree(t, proj, []node{
		{path: "cortex.yaml", content: testManifest},
		{path: "agents/worker.py", content: "import pkg\n"},
		{path: "node_modules/stale/index.js", content: "old"},
	})
	l := scan(t, layerDir)
	data, idx := createBytes(t, CreateOptions{Dir: proj, Layers: []*Layer{l, l}, Meta: []byte(`{"agents":{}}`), Exclude: []string{"node_modules"}})
	return data, idx, l
}

// TestLayersInBundle: layers and the meta file are packed under .cortex/,
// reproducibly; Exclude leaves paths out; Open accepts the result and
// ReadFile returns the meta file.
func TestLayersInBundle(t *testing.T) {
	ld := t.TempDir()
	writeTree(t, ld, layerNodes)
	data, idx, l := layeredProject(t, ld)
	data2, _, _ := layeredProject(t, ld)
	if !bytes.Equal(data, data2) {
		t.Error("the same project and layer gave different bundles")
	}
	root := LayersDir + "/" + l.Digest
	for _, p := range []string{".cortex", MetaPath, LayersDir, root, root + "/pkg/__init__.py", root + "/bin/tool"} {
		if _, ok := idx.Lookup(p); !ok {
			t.Errorf("index lacks %s", p)
		}
	}
	if _, ok := idx.Lookup("node_modules"); ok {
		t.Error("an excluded path was packed")
	}
	if got := idx.LayerDigests(); len(got) != 1 || got[0] != l.Digest {
		t.Errorf("LayerDigests = %v, want [%s]", got, l.Digest)
	}
	b, err := Open(writeBundle(t, data))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer b.Close()
	meta, err := b.ReadFile(context.Background(), MetaPath, 1<<20)
	if err != nil || string(meta) != `{"agents":{}}` {
		t.Fatalf("ReadFile = %q, %v", meta, err)
	}
	if _, err := b.ReadFile(context.Background(), ".cortex/none.json", 1<<20); !errdefs.IsNotFound(err) {
		t.Errorf("ReadFile of a missing file: %v, want NotFound", err)
	}
}

// TestLayerStore: with a layer store, a layer goes there (mode 0755,
// content intact) and not under dest; a second bundle holding the same
// layer stores nothing new.
func TestLayerStore(t *testing.T) {
	ld := t.TempDir()
	writeTree(t, ld, layerNodes)
	data, _, l := layeredProject(t, ld)
	store := t.TempDir()
	a := newArea(t)
	b, err := Open(writeBundle(t, data))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.ExtractWith(context.Background(), a.dest, ExtractOptions{Layers: store}); err != nil {
		t.Fatalf("ExtractWith: %v", err)
	}
	got := listTree(t, filepath.Join(store, l.Digest))
	want := map[string]string{
		"bin":                        "dir 0755",
		"bin/tool":                   "symlink -> ../pkg/_native.so",
		"pkg":                        "dir 0755",
		"pkg/__init__.py":            "file 0644 VALUE = 1\n",
		"pkg/_native.so":             "file 0755 \x7fELF",
		"pkg-1.0.dist-info":          "dir 0755",
		"pkg-1.0.dist-info/METADATA": "file 0644 Name: pkg\nVersion: 1.0\n",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored layer (-want +got):\n%s", diff)
	}
	if fi, err := os.Stat(filepath.Join(store, l.Digest)); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("layer dir: %v %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(a.dest, LayersDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("layers were extracted under dest too: %v", err)
	}
	if m, err := os.ReadFile(filepath.Join(a.dest, MetaPath)); err != nil || string(m) != `{"agents":{}}` {
		t.Errorf("meta under dest: %q %v", m, err)
	}
	// A stored layer is never written again: mark it and extract another
	// bundle holding it.
	marker := filepath.Join(store, l.Digest, "pkg", "__init__.py")
	st1, _ := os.Stat(marker)
	dest2 := filepath.Join(filepath.Dir(a.dest), "dest2")
	if err := b.ExtractWith(context.Background(), dest2, ExtractOptions{Layers: store}); err != nil {
		t.Fatalf("second ExtractWith: %v", err)
	}
	st2, _ := os.Stat(marker)
	if !os.SameFile(st1, st2) {
		t.Error("the stored layer was replaced")
	}
	ents, _ := os.ReadDir(store)
	if len(ents) != 1 {
		t.Errorf("store holds %d entries, want 1 (no leftovers)", len(ents))
	}
}
