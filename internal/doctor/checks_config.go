package doctor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/runtimes"
	"golang.org/x/sys/unix"
)

func (h *Host) checkConfig() Check {
	return &Func{Meta: Info{ID: "config.file", Title: "etc/cortex/config.yaml is valid and in effect", Critical: true},
		RunFunc: func(ctx context.Context) Result {
			path := h.Paths.ConfigFile
			if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
				return OK("no %s: the built-in defaults apply", path)
			}
			fresh, err := config.Load(path)
			if err != nil {
				return Fail(Manual("correct the lines named above (docs/config.md); cortexd refuses to start with them", ""), "%v", err)
			}
			if h.Running && h.Config != nil {
				a, b := *fresh, *h.Config
				a.Source, b.Source = "", ""
				if !reflect.DeepEqual(a, b) {
					return Warn(Manual("restart cortexd to apply it (agents keep running)", "systemctl restart cortexd"),
						"%s is valid but differs from the configuration cortexd runs with (changed since it started)", path)
				}
				return OK("%s is valid and is what cortexd runs with", path)
			}
			return OK("%s is valid", path)
		}}
}

func (h *Host) checkRuntimes() Check {
	return &Func{Meta: Info{ID: "runtimes.interpreters", Title: "an interpreter for each configured runtime", Critical: true},
		RunFunc: func(ctx context.Context) Result {
			var overrides map[string]string
			if h.Config != nil {
				overrides = h.Config.Runtimes
			}
			reg := runtimes.NewRegistry(overrides, h.PyenvRoot)
			var found, missing, broken []string
			for _, rt := range manifest.Runtimes {
				ip, err := reg.Lookup(rt)
				switch {
				case err == nil:
					found = append(found, fmt.Sprintf("%s %s (%s)", rt, ip.Path, ip.Version))
				case overrides[rt] != "":
					broken = append(broken, fmt.Sprintf("runtimes.%s: %s: %v", rt, overrides[rt], err))
				default:
					missing = append(missing, rt)
				}
			}
			ev := "found: " + strings.Join(found, ", ")
			if len(found) == 0 {
				ev = "no interpreter found"
			}
			if len(missing) > 0 {
				ev += "; not installed: " + strings.Join(missing, ", ")
			}
			if len(broken) > 0 {
				src := "/etc/cortex/config.yaml"
				if h.Config != nil && h.Config.Source != "" {
					src = h.Config.Source
				}
				return Fail(Manual("point each runtimes: entry of "+src+" at an installed interpreter of that version, or remove the entry to use discovery", ""),
					"%s; %s", strings.Join(broken, "; "), ev)
			}
			if len(found) == 0 {
				return Fail(Manual("install Python 3.10-3.13 or Node.js 18/20 (docs/manifest.md, runtimes)", ""), "%s", ev)
			}
			return OK("%s", ev)
		}}
}

// paravirtClocks are clock sources kept in step by the hypervisor.
var paravirtClocks = []string{"kvm-clock", "xen", "hyperv_clocksource_tsc_page", "hyperv_clocksource"}

func (h *Host) checkClock() Check {
	return &Func{Meta: Info{ID: "clock.sanity", Title: "the clock is plausible and kept in step"},
		RunFunc: func(ctx context.Context) Result {
			now := h.now()
			ev := "now " + now.UTC().Format(time.RFC3339)
			if h.Executable != "" {
				if fi, err := os.Stat(h.Executable); err == nil && now.Before(fi.ModTime().Add(-24*time.Hour)) {
					return Fail(Manual("set the clock (timedatectl set-ntp true, or date -s); TLS and log times depend on it", "timedatectl set-ntp true"),
						"%s is before %s was built or installed (%s)", ev, h.Executable, fi.ModTime().UTC().Format(time.RFC3339))
				}
			}
			for _, f := range []string{filepath.Join(h.Paths.LibDir, "state.db"), filepath.Join(h.Paths.LogDir, "cortexd.log")} {
				if fi, err := os.Stat(f); err == nil && fi.ModTime().After(now.Add(5*time.Minute)) {
					return Warn(Manual("the clock went back: check time synchronisation (timedatectl)", "timedatectl status"),
						"%s; %s was written at %s, in the future", ev, f, fi.ModTime().UTC().Format(time.RFC3339))
				}
			}
			var tx unix.Timex
			state, err := unix.Adjtimex(&tx)
			if err != nil {
				return OK("%s; adjtimex: %v", ev, err)
			}
			src := readTrim("/sys/devices/system/clocksource/clocksource0/current_clocksource")
			if tx.Status&unix.STA_UNSYNC == 0 && state != unix.TIME_ERROR {
				return OK("%s; synchronised (estimated error %dus); clocksource %s", ev, tx.Esterror, src)
			}
			if slices.Contains(paravirtClocks, src) {
				return OK("%s; no NTP discipline, but clocksource %s is kept by the hypervisor", ev, src)
			}
			return Warn(Manual("enable time synchronisation (systemd-timesyncd, chrony or ntpd)", "timedatectl set-ntp true"),
				"%s; the kernel reports the clock unsynchronised (clocksource %s)", ev, src)
		}}
}

func readTrim(p string) string {
	b, _ := os.ReadFile(p)
	return strings.TrimSpace(string(b))
}

// uidRangeSize is how many uids the agent range spans (documented in
// docs/ops.md).
const uidRangeSize = 65536

func (h *Host) checkUIDs() Check {
	return &Func{Meta: Info{ID: "uids.range", Title: "the agents' uid range is free on this host"},
		RunFunc: func(ctx context.Context) Result {
			base := h.UIDBase
			if base <= 0 {
				base = 1600000
			}
			end := base + uidRangeSize - 1
			var clashes []string
			for _, f := range []string{"/etc/passwd", "/etc/group"} {
				for _, e := range readColon(f) {
					if len(e) > 2 {
						if id, err := strconv.Atoi(e[2]); err == nil && id >= base && id <= end {
							clashes = append(clashes, fmt.Sprintf("%s: %s has id %d", f, e[0], id))
						}
					}
				}
			}
			for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
				for _, e := range readColon(f) {
					if len(e) < 3 {
						continue
					}
					lo, err1 := strconv.Atoi(e[1])
					n, err2 := strconv.Atoi(e[2])
					if err1 == nil && err2 == nil && lo <= end && lo+n-1 >= base {
						clashes = append(clashes, fmt.Sprintf("%s: %s holds %d-%d", f, e[0], lo, lo+n-1))
					}
				}
			}
			// The uid map of this namespace must cover the range.
			covered := false
			for _, e := range readFields("/proc/self/uid_map") {
				if len(e) == 3 {
					in, _ := strconv.Atoi(e[0])
					n, _ := strconv.ParseInt(e[2], 10, 64)
					if int64(in) <= int64(base) && int64(in)+n-1 >= int64(end) {
						covered = true
					}
				}
			}
			if !covered {
				return Fail(Manual("run cortexd in the initial user namespace, or one that maps the agent range", ""),
					"this user namespace does not map uids %d-%d (/proc/self/uid_map)", base, end)
			}
			inUse := ""
			if h.State != nil {
				if agents, err := h.State.Agents(ctx); err == nil {
					n := 0
					for _, a := range agents {
						if a.Active {
							n++
						}
					}
					inUse = fmt.Sprintf("; %d in use by agents", n)
				}
			}
			if len(clashes) > 0 {
				return Warn(Manual("move those users, groups or subordinate ranges out of the agent range: processes with those ids could signal or read what agents own", ""),
					"agent uids %d-%d: %s", base, end, list(clashes, 5))
			}
			return OK("agent uids %d-%d: no user, group or subordinate range there%s", base, end, inUse)
		}}
}

func readColon(path string) [][]string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, strings.Split(l, ":"))
	}
	return out
}

func readFields(path string) [][]string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out [][]string
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			out = append(out, f)
		}
	}
	return out
}
