package cgroups

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseMountinfo(t *testing.T) {
	v1 := func(point string, ctrl ...string) mount {
		return mount{Point: point, Root: "/", Version: 1, Controllers: ctrl}
	}
	for _, tc := range []struct {
		file    string
		want    []mount
		wantErr string
	}{
		{file: "hybrid.txt", want: []mount{
			v1("/sys/fs/cgroup/cpu", "cpu"),
			v1("/sys/fs/cgroup/cpuacct", "cpuacct"),
			v1("/sys/fs/cgroup/cpuset", "cpuset"),
			v1("/sys/fs/cgroup/memory", "memory"),
			v1("/sys/fs/cgroup/devices", "devices"),
			v1("/sys/fs/cgroup/freezer", "freezer"),
			v1("/sys/fs/cgroup/blkio", "blkio"),
			v1("/sys/fs/cgroup/pids", "pids"),
			v1("/sys/fs/cgroup/systemd", "name=systemd"),
			{Point: "/sys/fs/cgroup/unified", Root: "/", Version: 2},
		}},
		{file: "unified.txt", want: []mount{{Point: "/sys/fs/cgroup", Root: "/", Version: 2}}},
		{file: "legacy-comounted.txt", want: []mount{
			v1("/sys/fs/cgroup/systemd", "name=systemd"),
			v1("/sys/fs/cgroup/cpu,cpuacct", "cpu", "cpuacct"),
			v1("/sys/fs/cgroup/net_cls,net_prio", "net_cls", "net_prio"),
			v1("/sys/fs/cgroup/memory", "memory"),
			v1("/sys/fs/cgroup/pids", "pids"),
			v1("/sys/fs/cgroup/freezer", "freezer"),
			{Point: "/sys/fs/cgroup/memory2", Root: "/docker/abc", Version: 1, Controllers: []string{"memory"}},
		}},
		{file: "escaped.txt", want: []mount{
			{Point: "/mnt/my cgroups", Root: "/", Version: 2},
			v1(`/mnt/back\slash`, "pids"),
		}},
		{file: "none.txt", want: nil},
		{file: "short.txt", wantErr: "fields before the separator"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", "mountinfo", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := parseMountinfo(f)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("mounts (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseMountinfo(f *testing.F) {
	entries, _ := os.ReadDir(filepath.Join("testdata", "mountinfo"))
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join("testdata", "mountinfo", e.Name()))
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, s string) {
		mounts, err := parseMountinfo(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, m := range mounts {
			if m.Version != 1 && m.Version != 2 {
				t.Fatalf("mount %+v has version %d", m, m.Version)
			}
			if m.Version == 2 && len(m.Controllers) > 0 {
				t.Fatalf("cgroup2 mount %+v lists v1 controllers", m)
			}
			for _, c := range m.Controllers {
				if !v1Controllers[c] && !strings.HasPrefix(c, "name=") {
					t.Fatalf("mount %+v: %q is not a controller", m, c)
				}
			}
		}
	})
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		`/plain`:         "/plain",
		`/a\040b`:        "/a b",
		`/tab\011x`:      "/tab\tx",
		`/back\134slash`: `/back\slash`,
		`/short\04`:      `/short\04`,
		`/not\999octal`:  `/not\999octal`,
		`\040\040`:       "  ",
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseFlatKeyed(t *testing.T) {
	const oomControl = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"
	const events = "populated 1\nfrozen 0\n"
	for _, tc := range []struct {
		name, data, key string
		want            uint64
		ok              bool
	}{
		{"v1 oom_kill", oomControl, "oom_kill", 3, true},
		{"prefix is not the key", oomControl, "oom", 0, false},
		{"v2 frozen", events, "frozen", 0, true},
		{"v2 populated", events, "populated", 1, true},
		{"absent", events, "oom_kill", 0, false},
		{"not a number", "frozen yes\n", "frozen", 0, false},
		{"no value", "frozen\n", "frozen", 0, false},
		{"max uint64", "x 18446744073709551615", "x", 1<<64 - 1, true},
		{"overflow", "x 18446744073709551616", "x", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseFlatKeyed(tc.data, tc.key)
			if got != tc.want || ok != tc.ok {
				t.Errorf("parseFlatKeyed(%q, %q) = %d, %v; want %d, %v", tc.data, tc.key, got, ok, tc.want, tc.ok)
			}
		})
	}
}
