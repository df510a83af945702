package bundle

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// reproNodes builds a tree whose incidental attributes (creation order,
// mtimes, permission bits beyond "executable or not", owners) vary.
func reproNodes(variant int) []node {
	nodes := []node{
		{path: "cortex.yaml", content: testManifest},
		{path: "agents/worker.py", content: "def main():\n    pass\n", perm: 0o644},
		{path: "agents/tool.sh", content: "#!/bin/sh\n", perm: 0o755},
		{path: "prompts/a.txt", content: "a"},
		{path: "prompts/b.txt", content: "b"},
		{path: "prompts/nested/deep/c.txt", content: "c"},
		{path: "node_modules/x/index.js", content: "module.exports = 1\n"},
		{path: "node_modules/.bin/x", link: "../x/index.js"},
		{path: "empty", dir: true},
		{path: "z-last.txt", content: "z"},
	}
	if variant == 1 {
		slices.Reverse(nodes)
		for i := range nodes {
			switch nodes[i].perm {
			case 0o644:
				nodes[i].perm = 0o600
			case 0o755:
				nodes[i].perm = 0o700
			}
		}
	}
	return nodes
}

func TestReproducible(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeTree(t, a, reproNodes(0))
	// Reverse order creates the directories and files in another order, so
	// their inode numbers and on-disk directory order differ too.
	writeTree(t, b, reproNodes(1))
	setTimes(t, a, time.Date(2020, 5, 1, 12, 0, 0, 0, time.UTC))
	setTimes(t, b, time.Date(2024, 9, 9, 9, 9, 9, 123456789, time.UTC))
	if os.Geteuid() == 0 {
		if err := os.Lchown(filepath.Join(b, "agents", "worker.py"), 1234, 5678); err != nil {
			t.Fatal(err)
		}
	}

	dataA, idxA := createBytes(t, CreateOptions{Dir: a})
	dataA2, _ := createBytes(t, CreateOptions{Dir: a})
	dataB, idxB := createBytes(t, CreateOptions{Dir: b})
	if !bytes.Equal(dataA, dataA2) {
		t.Error("packing the same tree twice gave different bytes")
	}
	if !bytes.Equal(dataA, dataB) {
		t.Errorf("packing equal trees with different mtimes, order, perms and owners gave different bytes (%d vs %d bytes)", len(dataA), len(dataB))
	}
	if idxA.Digest != idxB.Digest {
		t.Errorf("digests differ: %s vs %s", idxA.Digest, idxB.Digest)
	}

	// One byte changed: another digest, other bytes.
	if err := os.WriteFile(filepath.Join(b, "prompts", "a.txt"), []byte("A"), 0o644); err != nil {
		t.Fatal(err)
	}
	dataC, idxC := createBytes(t, CreateOptions{Dir: b})
	if idxC.Digest == idxA.Digest {
		t.Error("a one-byte change kept the digest")
	}
	if bytes.Equal(dataC, dataA) {
		t.Error("a one-byte change kept the bytes")
	}

	// The executable bit is content: flipping it changes the digest.
	if err := os.Chmod(filepath.Join(a, "prompts", "b.txt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, idxD := createBytes(t, CreateOptions{Dir: a}); idxD.Digest == idxA.Digest {
		t.Error("making a file executable kept the digest")
	}
}

// TestDigestIsOverTheIndex pins the digest's definition (see Index.Digest)
// on a hand-computed example, so a change to the canonical form, which
// would orphan every bundle directory on every host, cannot go unnoticed.
func TestDigestIsOverTheIndex(t *testing.T) {
	files := []File{
		{Path: "a", Mode: modeDir},
		{Path: "a/l", Mode: modeSymlink, Link: "x"},
		{Path: "a/x", Mode: modeExec, Size: 2, SHA256: sha("hi")},
		{Path: "cortex.yaml", Mode: modeFile, Size: 0, SHA256: sha("")},
	}
	canon := "cortex-bundle-index/1\n" +
		"a\x00dir:0755\x000\x00\x00\x00" +
		"a/l\x00symlink:0777\x000\x00\x00x\x00" +
		"a/x\x00file:0755\x002\x00" + sha("hi") + "\x00\x00" +
		"cortex.yaml\x00file:0644\x000\x00" + sha("") + "\x00\x00"
	if got, want := computeDigest(files), "sha256:"+sha(canon); got != want {
		t.Errorf("computeDigest = %s, want %s", got, want)
	}
}
