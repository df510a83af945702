package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/trust"
	"github.com/cortexrt/cortex/internal/txn"
	"golang.org/x/sys/unix"
)

// permRule says which permission bits a path (and, with recurse, what is
// under it) must not have, and whether it must be root's.
type permRule struct {
	path    string
	what    string
	forbid  os.FileMode
	recurse bool
}

// permFinding is a path whose mode or owner breaks its rule.
type permFinding struct {
	path      string
	what      string
	mode      os.FileMode
	want      os.FileMode
	uid, gid  int
	fixOwner  bool
	fixMode   bool
	isSymlink bool
}

func (f permFinding) String() string {
	var why []string
	if f.fixMode {
		why = append(why, fmt.Sprintf("mode %04o, want %04o", f.mode, f.want))
	}
	if f.fixOwner {
		why = append(why, fmt.Sprintf("owned by uid %d, want root", f.uid))
	}
	return fmt.Sprintf("%s %s: %s", f.what, f.path, strings.Join(why, ", "))
}

func (h *Host) permRules() []permRule {
	p := h.Paths
	var rules []permRule
	if h.Config != nil {
		for _, prov := range h.Config.LLM.Providers {
			if prov.APIKeyFile != "" {
				rules = append(rules, permRule{prov.APIKeyFile, "llm key (" + prov.Name + ")", 0o077, false})
			}
		}
	}
	rules = append(rules, []permRule{
		{filepath.Dir(p.ConfigFile), "config dir", 0o022, false},
		{p.ConfigFile, "config", 0o022, false},
		{filepath.Join(filepath.Dir(p.ConfigFile), "keys"), "keys", 0o077, true},
		{filepath.Join(p.LibDir, "state.db"), "state", 0o077, false},
		{filepath.Join(p.LibDir, "state.db-wal"), "state", 0o077, false},
		{filepath.Join(p.LibDir, "state.db-shm"), "state", 0o077, false},
		{filepath.Join(p.LibDir, "secrets"), "secrets", 0o077, true},
		{filepath.Join(p.LibDir, "ops"), "ops", 0o077, false}, // not inside: backups keep their exact modes
		{filepath.Join(p.LogDir, "cortexd.log"), "daemon log", 0o077, false},
	}...)
	for _, dir := range []string{p.LibDir, p.LogDir} {
		matches, _ := filepath.Glob(filepath.Join(dir, "audit*"))
		for _, m := range matches {
			rules = append(rules, permRule{m, "audit", 0o077, true})
		}
	}
	return rules
}

// scanPerms applies the rules; missing paths are fine.
func (h *Host) scanPerms() []permFinding {
	euid := os.Geteuid()
	seen := map[string]bool{}
	var out []permFinding
	visit := func(path, what string, forbid os.FileMode, fi os.FileInfo) {
		if seen[path] {
			return
		}
		seen[path] = true
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return
		}
		f := permFinding{path: path, what: what, mode: fi.Mode().Perm(), uid: int(st.Uid), gid: int(st.Gid)}
		if fi.Mode()&os.ModeSymlink != 0 {
			return // the target has its own rule, if any
		}
		if t := fi.Mode().Type(); t != 0 && !fi.IsDir() {
			return // sockets and the like
		}
		f.want = f.mode &^ forbid
		f.fixMode = f.want != f.mode
		f.fixOwner = f.uid != 0 && f.uid != euid
		if f.fixMode || f.fixOwner {
			out = append(out, f)
		}
	}
	for _, r := range h.permRules() {
		fi, err := os.Lstat(r.path)
		if err != nil {
			continue
		}
		visit(r.path, r.what, r.forbid, fi)
		if r.recurse && fi.IsDir() {
			_ = filepath.WalkDir(r.path, func(p string, e fs.DirEntry, err error) error {
				if err != nil || p == r.path {
					return nil
				}
				if fi, err := e.Info(); err == nil {
					visit(p, r.what, r.forbid, fi)
				}
				return nil
			})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

func (h *Host) checkFilePerms() Check {
	return &Func{Meta: Info{ID: "perms.files", Title: "config, keys, secrets, state and audit files are root's and closed to others"},
		RunFunc: func(ctx context.Context) Result {
			found := h.scanPerms()
			if len(found) == 0 {
				n := 0
				for _, r := range h.permRules() {
					if _, err := os.Lstat(r.path); err == nil {
						n++
					}
				}
				return OK("%d paths checked (config, keys, LLM key files, state, secrets, audit, ops, daemon log)", n)
			}
			var lines []string
			for _, f := range found {
				lines = append(lines, f.String())
			}
			return Result{Status: api.CheckFail, Evidence: list(lines, 8), Data: found,
				Fix: Auto(fmt.Sprintf("chmod (and chown to root) the %d path(s) named", len(found)))}
		},
		FixFunc: func(ctx context.Context, r Result, tx *txn.Txn) error {
			for _, f := range h.scanPerms() { // as they are now
				if f.fixOwner {
					if err := tx.Chown(f.path, os.Geteuid(), -1); err != nil {
						return err
					}
				}
				if f.fixMode {
					if err := tx.Chmod(f.path, f.want); err != nil {
						return err
					}
				}
			}
			return nil
		}}
}

func (h *Host) checkSocketPerms() Check {
	return &Func{Meta: Info{ID: "perms.socket", Title: "the API socket is root's, group cortex at most, closed to others"},
		RunFunc: func(ctx context.Context) Result {
			sock := h.Paths.Socket
			fi, err := os.Lstat(sock)
			if errors.Is(err, fs.ErrNotExist) {
				return Skip("no API socket at %s (no daemon runs)", sock)
			}
			if err != nil {
				return Fail(nil, "%v", err)
			}
			if fi.Mode()&os.ModeSocket == 0 {
				return Fail(Manual("remove it; cortexd creates the socket when it starts", "rm "+sock), "%s is a %s, not a socket", sock, fi.Mode().Type())
			}
			st := fi.Sys().(*syscall.Stat_t)
			var bad []string
			if int(st.Uid) != 0 && int(st.Uid) != os.Geteuid() {
				bad = append(bad, fmt.Sprintf("owned by uid %d", st.Uid))
			}
			if st.Gid != 0 {
				if g, err := user.LookupGroupId(strconv.Itoa(int(st.Gid))); err != nil || g.Name != "cortex" {
					bad = append(bad, fmt.Sprintf("group %d is neither root nor cortex", st.Gid))
				}
			}
			if fi.Mode().Perm()&0o007 != 0 {
				bad = append(bad, fmt.Sprintf("mode %04o lets every user call the API", fi.Mode().Perm()))
			}
			if len(bad) > 0 {
				return Result{Status: api.CheckFail, Evidence: sock + ": " + strings.Join(bad, ", "),
					Fix: Auto("chmod 0660 and chown root the socket (cortexd makes it so at every start)")}
			}
			return OK("%s: mode %04o, uid %d, gid %d", sock, fi.Mode().Perm(), st.Uid, st.Gid)
		},
		FixFunc: func(ctx context.Context, r Result, tx *txn.Txn) error {
			sock := h.Paths.Socket
			fi, err := os.Lstat(sock)
			if err != nil {
				return err
			}
			st := fi.Sys().(*syscall.Stat_t)
			if int(st.Uid) != 0 && int(st.Uid) != os.Geteuid() {
				if err := tx.Chown(sock, os.Geteuid(), -1); err != nil {
					return err
				}
			}
			if fi.Mode().Perm()&0o007 != 0 {
				return tx.Chmod(sock, fi.Mode().Perm()&0o770)
			}
			return nil
		}}
}

func (h *Host) checkHookPerms() Check {
	return &Func{Meta: Info{ID: "perms.hooks", Title: "hooks and plugins are root's and writable by nobody else (root runs them)"},
		RunFunc: func(ctx context.Context) Result {
			var bad []string
			n := 0
			for _, dir := range []string{h.Paths.HooksDir, h.Paths.PluginsDir} {
				if err := trust.Path(dir); err != nil {
					bad = append(bad, err.Error())
					continue
				}
				_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
					if err != nil || p == dir {
						return nil
					}
					n++
					if err := trust.Path(p); err != nil {
						bad = append(bad, err.Error())
						if e.IsDir() {
							return filepath.SkipDir
						}
					}
					return nil
				})
			}
			if len(bad) > 0 {
				return Fail(Manual("review each file named (it could have been changed by someone else), then make it root's and writable by nobody else: chown root:root PATH; chmod go-w PATH. Until then cortexd refuses to run it (and refuses runs while a pre-run hook is untrusted)", ""),
					"%s", list(bad, 8))
			}
			return OK("%d hook and plugin paths under %s and %s", n, h.Paths.HooksDir, h.Paths.PluginsDir)
		}}
}

const (
	mib = 1 << 20
	gib = 1 << 30
)

func (h *Host) checkDisk() Check {
	return &Func{Meta: Info{ID: "disk.space", Title: "disk space and inodes for logs, bundles and the state DB", Critical: true},
		RunFunc: func(ctx context.Context) Result {
			type fsys struct {
				dirs                      []string
				size, avail, files, ffree uint64
				fstype                    string
			}
			byID := map[[2]int32]*fsys{}
			var order []*fsys
			for _, d := range []string{h.Paths.LogDir, h.Paths.LibDir, h.Paths.CacheDir} {
				var st unix.Statfs_t
				if err := unix.Statfs(d, &st); err != nil {
					continue
				}
				id := [2]int32{st.Fsid.Val[0], st.Fsid.Val[1]}
				f, ok := byID[id]
				if !ok {
					f = &fsys{size: st.Blocks * uint64(st.Bsize), avail: st.Bavail * uint64(st.Bsize), files: st.Files, ffree: st.Ffree, fstype: fsName(st.Type)}
					byID[id] = f
					order = append(order, f)
				}
				f.dirs = append(f.dirs, d)
			}
			if len(order) == 0 {
				return Skip("none of %s, %s, %s exists yet", h.Paths.LogDir, h.Paths.LibDir, h.Paths.CacheDir)
			}
			status := api.CheckOK
			var parts []string
			for _, f := range order {
				pct := 100.0
				if f.size > 0 {
					pct = float64(f.avail) * 100 / float64(f.size)
				}
				ipct := 100.0
				if f.files > 0 {
					ipct = float64(f.ffree) * 100 / float64(f.files)
				}
				s := api.CheckOK
				switch {
				case f.avail < 64*mib || pct < 1 || ipct < 1:
					s = api.CheckFail
				case f.avail < 512*mib || pct < 5 || ipct < 5:
					s = api.CheckWarn
				}
				if s == api.CheckFail || (s == api.CheckWarn && status == api.CheckOK) {
					status = s
				}
				parts = append(parts, fmt.Sprintf("%s (%s, %s): %s free (%.1f%%), inodes %.1f%% free [%s]",
					strings.Join(f.dirs, ", "), f.fstype, human(f.size), human(f.avail), pct, ipct, s))
			}
			ev := strings.Join(parts, "; ")
			fix := Manual("free space on that filesystem: remove projects no longer needed (cortex rm), let cortex-ops repair move orphaned bundles aside, or lower logs.segments and logs.segment_size in config.yaml", "cortex list -a")
			switch status {
			case api.CheckFail:
				return Fail(fix, "%s", ev)
			case api.CheckWarn:
				return Warn(fix, "%s", ev)
			}
			return OK("%s", ev)
		}}
}

func fsName(t int64) string {
	switch t {
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.EXT4_SUPER_MAGIC:
		return "ext4"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlay"
	}
	return fmt.Sprintf("fs 0x%x", t)
}

func human(b uint64) string {
	switch {
	case b >= gib:
		return fmt.Sprintf("%.1fGiB", float64(b)/gib)
	case b >= mib:
		return fmt.Sprintf("%.1fMiB", float64(b)/mib)
	case b >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%dB", b)
}
