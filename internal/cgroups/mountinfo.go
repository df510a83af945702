package cgroups

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// mount is one cgroup filesystem found in /proc/self/mountinfo.
type mount struct {
	Point       string   // mount point
	Root        string   // root of the mount inside its hierarchy ("/" unless bind-mounted or namespaced)
	Version     int      // 1 or 2
	Controllers []string // v1 only: controllers of the hierarchy ("memory", "cpu", "name=systemd")
}

// v1Controllers are the controller names a v1 mount's super options can
// carry; anything else there is a mount option.
var v1Controllers = map[string]bool{
	"blkio": true, "cpu": true, "cpuacct": true, "cpuset": true, "devices": true,
	"freezer": true, "hugetlb": true, "memory": true, "misc": true, "net_cls": true,
	"net_prio": true, "perf_event": true, "pids": true, "rdma": true,
}

// parseMountinfo returns the cgroup and cgroup2 mounts of a mountinfo
// file (proc(5)), in file order. Lines that are not cgroup mounts are
// skipped; a cgroup line that cannot be parsed is an error.
func parseMountinfo(r io.Reader) ([]mount, error) {
	var out []mount
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; s.Scan(); n++ {
		line := s.Text()
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			if strings.TrimSpace(line) == "" {
				continue
			}
			return nil, fmt.Errorf("mountinfo line %d: no \" - \" separator", n)
		}
		after := strings.Fields(post)
		if len(after) < 1 {
			return nil, fmt.Errorf("mountinfo line %d: no filesystem type", n)
		}
		var version int
		switch after[0] {
		case "cgroup":
			version = 1
		case "cgroup2":
			version = 2
		default:
			continue
		}
		before := strings.Fields(pre)
		if len(before) < 6 {
			return nil, fmt.Errorf("mountinfo line %d: %d fields before the separator, want at least 6", n, len(before))
		}
		m := mount{Root: unescapeMount(before[3]), Point: unescapeMount(before[4]), Version: version}
		if version == 1 && len(after) >= 3 {
			for _, opt := range strings.Split(after[2], ",") {
				if v1Controllers[opt] || strings.HasPrefix(opt, "name=") {
					m.Controllers = append(m.Controllers, opt)
				}
			}
		}
		out = append(out, m)
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return out, nil
}

// unescapeMount undoes the octal escapes (\040 for a space) the kernel
// writes in mountinfo paths.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			v := (s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0')
			b.WriteByte(v)
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// parseFlatKeyed reads a cgroup "flat keyed" file ("key value" lines, as
// in memory.oom_control, memory.events, cgroup.events, cpu.stat) and
// returns the value of key; ok is false if the key is absent or its value
// is not a number.
func parseFlatKeyed(data, key string) (v uint64, ok bool) {
	for _, line := range strings.Split(data, "\n") {
		k, val, found := strings.Cut(strings.TrimSpace(line), " ")
		if !found || k != key {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(val), 10, 64)
		if err != nil {
			return 0, false
		}
		return n, true
	}
	return 0, false
}
