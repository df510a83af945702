package doctor

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/cgroups"
	"github.com/cortexrt/cortex/internal/egress"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/sandbox"
	"github.com/cortexrt/cortex/internal/seccomp"
	"golang.org/x/sys/unix"
)

func hintFix(err error, fallback string) *api.Fix {
	if h := errdefs.HintOf(err); h != "" {
		return Manual(h, "")
	}
	return Manual(fallback, "")
}

func (h *Host) checkCgroups() Check {
	return &Func{Meta: Info{ID: "kernel.cgroups", Title: "cgroup controllers for memory, CPU and pids ceilings", Critical: true},
		RunFunc: func(ctx context.Context) Result {
			info := cgroups.Probe()
			var usable, broken []string
			for _, c := range info.Controllers {
				if c.Usable {
					usable = append(usable, c.Name)
				} else {
					broken = append(broken, c.Name+": "+c.Reason)
				}
			}
			if err := info.Err(); err != nil {
				return Fail(hintFix(err, "mount the cgroup controllers Cortex needs (docs/lifecycle.md)"),
					"mode %s: %v", info.Mode, err)
			}
			ev := fmt.Sprintf("cgroup v%d (mode %s): %s usable; swap: %s", info.Version, info.Mode, strings.Join(usable, ", "), info.Swap)
			if len(broken) > 0 {
				ev += "; not usable: " + strings.Join(broken, "; ")
			}
			return OK("%s", ev)
		}}
}

func (h *Host) checkNamespaces() Check {
	return &Func{Meta: Info{ID: "kernel.namespaces", Title: "namespaces for sandboxes (pid, mount, uts, ipc, cgroup; net in kernel.nftables)", Critical: true},
		RunFunc: func(ctx context.Context) Result {
			if os.Geteuid() != 0 {
				return Fail(Manual("run cortexd (and cortex-ops doctor) as root; rootless mode is not built yet", ""), "running as uid %d, not root", os.Geteuid())
			}
			// unshare in a thread that is thrown away afterwards.
			errc := make(chan error, 1)
			go func() {
				runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
				errc <- unix.Unshare(unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWCGROUP)
			}()
			if err := <-errc; err != nil {
				return Fail(Manual("use a kernel with CONFIG_PID_NS, CONFIG_UTS_NS, CONFIG_IPC_NS and CONFIG_CGROUPS namespaces, and run cortexd as root outside a restricting container", ""),
					"unshare(pid|mnt|uts|ipc|cgroup) failed: %v", err)
			}
			ev := "unshare(pid|mnt|uts|ipc|cgroup) works"
			if b, err := os.ReadFile("/proc/sys/user/max_user_namespaces"); err == nil {
				if strings.TrimSpace(string(b)) == "0" {
					return Warn(Manual("allow user namespaces: sysctl -w user.max_user_namespaces=15000 (filesystem.write grants use an idmapped mount through one)", "sysctl -w user.max_user_namespaces=15000"),
						"%s; but user.max_user_namespaces is 0", ev)
				}
				ev += "; user.max_user_namespaces=" + strings.TrimSpace(string(b))
			}
			return OK("%s", ev)
		}}
}

func (h *Host) checkSeccomp() Check {
	return &Func{Meta: Info{ID: "kernel.seccomp", Title: "seccomp filters compile and the kernel takes them", Critical: true},
		RunFunc: func(ctx context.Context) Result {
			if err := seccomp.Probe(); err != nil {
				return Fail(hintFix(err, "use a kernel with CONFIG_SECCOMP_FILTER and a build with libseccomp"), "%v", err)
			}
			progs, err := sandbox.SeccompPrograms()
			if err != nil {
				return Fail(hintFix(err, "report this: the built-in filters do not compile on this host"), "compile the agent filters: %v", err)
			}
			n := 0
			for _, p := range progs {
				n += len(p)
			}
			return OK("%d filters, %d BPF instructions; filter mode with errno and allow actions", len(progs), n)
		}}
}

func (h *Host) checkLandlock() Check {
	return &Func{Meta: Info{ID: "kernel.landlock", Title: "Landlock (a second filesystem wall)"},
		RunFunc: func(ctx context.Context) Result {
			abi := sandbox.LandlockABI()
			if abi == 0 {
				return Warn(Manual("boot a kernel with CONFIG_SECURITY_LANDLOCK and landlock in lsm= (the mount tree still confines files)", ""),
					"the kernel has no Landlock")
			}
			return OK("Landlock ABI %d", abi)
		}}
}

func (h *Host) checkNftables() Check {
	return &Func{Meta: Info{ID: "kernel.nftables", Title: "network namespaces and nftables for the egress gateway", Critical: true},
		RunFunc: func(ctx context.Context) Result {
			if err := egress.Probe(); err != nil {
				return Fail(hintFix(err, "use a kernel with network namespaces and nftables nat, redir, reject and log"), "%v", err)
			}
			return OK("a throwaway namespace was served: loopback routes, nftables nat/redir/reject/log and NFLOG work")
		}}
}
