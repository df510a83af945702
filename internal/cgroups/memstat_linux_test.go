package cgroups

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestV2MemoryStatFiles reads v2 memory files as a kernel writes them
// (this host's cgroup2 has no memory controller, so the files are
// written here): memory.stat's kernel key, or its parts before Linux
// 5.18, and memory.peak where it exists.
func TestV2MemoryStatFiles(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  MemoryStat
	}{
		{
			name: "linux 6.x",
			files: map[string]string{
				"memory.stat":    "anon 1000\nfile 2000\nkernel 300\nkernel_stack 16\npagetables 8\nsock 40\nshmem 500\nfile_mapped 7\n",
				"memory.current": "3500\n",
				"memory.peak":    "9000\n",
			},
			want: MemoryStat{Usage: 3500, Peak: 9000, Anon: 1000, File: 2000, Shmem: 500, Kernel: 300, Sock: 40},
		},
		{
			name: "before 5.18: no kernel key, no memory.peak",
			files: map[string]string{
				"memory.stat":    "anon 1000\nfile 2000\nkernel_stack 16\nslab 100\npagetables 8\nsock 0\nshmem 0\n",
				"memory.current": "3200\n",
			},
			want: MemoryStat{Usage: 3200, Anon: 1000, File: 2000, Kernel: 124},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mount := t.TempDir()
			dir := filepath.Join(mount, "p", "a")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, data := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			g := &v2Group{m: &v2Manager{mount: mount}, name: "p/a", rel: "p/a"}
			got, err := g.MemoryStat()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("MemoryStat (-want +got):\n%s", diff)
			}
		})
	}
	g := &v2Group{m: &v2Manager{mount: t.TempDir()}, name: "gone", rel: "gone"}
	if _, err := g.MemoryStat(); err == nil {
		t.Error("MemoryStat of a missing group succeeded")
	}
}
