//go:build linux && cgo && amd64

package seccomp

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Kernel return values (linux/seccomp.h).
const (
	retAllow = 0x7fff0000
	retErrno = 0x00050000
	retEPERM = retErrno | 1
	retNOSYS = retErrno | 38

	auditArchX86_64  = 0xc000003e
	auditArchI386    = 0x40000003
	auditArchAArch64 = 0xc00000b7

	i386Unshare = 310
	i386Read    = 3
)

// seccompData is the kernel's struct seccomp_data.
type seccompData struct {
	nr   int32
	arch uint32
	ip   uint64
	args [6]uint64
}

// vmInput lays out d as the kernel does on a little-endian machine (nr at 0,
// arch at 4, instruction_pointer at 8, args[i] at 16+8i, the low half of each
// 64-bit field at the lower offset) for x/net/bpf's VM. The kernel's 32-bit
// BPF loads read native (little-endian) words; the VM's read big-endian
// (network order) ones, so each 32-bit word is stored big-endian where the
// little-endian layout puts it. Both then load the same values from the same
// offsets.
func (d seccompData) vmInput() []byte {
	b := make([]byte, 64)
	put := func(off int, v uint32) { binary.BigEndian.PutUint32(b[off:], v) }
	put(0, uint32(d.nr))
	put(4, d.arch)
	put(8, uint32(d.ip))
	put(12, uint32(d.ip>>32))
	for i, a := range d.args {
		put(16+8*i, uint32(a))
		put(20+8*i, uint32(a>>32))
	}
	return b
}

func (d seccompData) String() string {
	return fmt.Sprintf("{nr %#x arch %#x args %#x}", uint32(d.nr), d.arch, d.args)
}

type vmFilter struct {
	vm   *bpf.VM
	size int
}

func buildVM(t testing.TB, p Profile) vmFilter {
	t.Helper()
	f, err := p.Build()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Release()
	raw, err := f.BPF()
	if err != nil {
		t.Fatal(err)
	}
	ins, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatalf("libseccomp emitted instructions x/net/bpf cannot decode: %v", ins)
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	return vmFilter{vm: vm, size: len(raw)}
}

func (f vmFilter) run(t testing.TB, d seccompData) uint32 {
	t.Helper()
	out, err := f.vm.Run(d.vmInput())
	if err != nil {
		t.Fatalf("%v: %v", d, err)
	}
	return uint32(out)
}

func native(nr int, args ...uint64) seccompData {
	d := seccompData{nr: int32(nr), arch: auditArchX86_64, ip: 0x7f00_1234_5678}
	copy(d.args[:], args)
	return d
}

func retName(r uint32) string {
	switch {
	case r == retAllow:
		return "ALLOW"
	case r&0xffff0000 == retErrno:
		return "ERRNO(" + unix.ErrnoName(unix.Errno(r&0xffff)) + ")"
	}
	return fmt.Sprintf("%#x", r)
}

func TestBPFPolicy(t *testing.T) {
	f := buildVM(t, Default())
	const junk = 0xdead_beef_0000_0000
	const threadFlags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD | unix.CLONE_SYSVSEM
	tests := []struct {
		name string
		in   seccompData
		want uint32
	}{
		// The brief's list, with numbers from x/sys/unix rather than libseccomp.
		{"mount", native(unix.SYS_MOUNT), retEPERM},
		{"umount2", native(unix.SYS_UMOUNT2), retEPERM},
		{"pivot_root", native(unix.SYS_PIVOT_ROOT), retEPERM},
		{"chroot", native(unix.SYS_CHROOT), retEPERM},
		{"move_mount", native(unix.SYS_MOVE_MOUNT), retEPERM},
		{"open_tree", native(unix.SYS_OPEN_TREE), retEPERM},
		{"open_tree_attr (467, unknown to libseccomp 2.5)", native(467), retEPERM},
		{"fsopen", native(unix.SYS_FSOPEN), retEPERM},
		{"fsmount", native(unix.SYS_FSMOUNT), retEPERM},
		{"fsconfig", native(unix.SYS_FSCONFIG), retEPERM},
		{"fspick", native(unix.SYS_FSPICK), retEPERM},
		{"mount_setattr", native(unix.SYS_MOUNT_SETATTR), retEPERM},
		{"ptrace", native(unix.SYS_PTRACE, unix.PTRACE_TRACEME), retEPERM},
		{"process_vm_readv", native(unix.SYS_PROCESS_VM_READV), retEPERM},
		{"process_vm_writev", native(unix.SYS_PROCESS_VM_WRITEV), retEPERM},
		{"unshare", native(unix.SYS_UNSHARE, unix.CLONE_NEWUSER), retEPERM},
		{"unshare CLONE_FILES", native(unix.SYS_UNSHARE, unix.CLONE_FILES), retEPERM},
		{"setns", native(unix.SYS_SETNS, 3, 0), retEPERM},
		{"init_module", native(unix.SYS_INIT_MODULE), retEPERM},
		{"finit_module", native(unix.SYS_FINIT_MODULE), retEPERM},
		{"delete_module", native(unix.SYS_DELETE_MODULE), retEPERM},
		{"kexec_load", native(unix.SYS_KEXEC_LOAD), retEPERM},
		{"kexec_file_load", native(unix.SYS_KEXEC_FILE_LOAD), retEPERM},
		{"reboot", native(unix.SYS_REBOOT), retEPERM},
		{"bpf", native(unix.SYS_BPF), retEPERM},
		{"perf_event_open", native(unix.SYS_PERF_EVENT_OPEN), retEPERM},
		{"keyctl", native(unix.SYS_KEYCTL), retEPERM},
		{"add_key", native(unix.SYS_ADD_KEY), retEPERM},
		{"request_key", native(unix.SYS_REQUEST_KEY), retEPERM},
		{"userfaultfd", native(unix.SYS_USERFAULTFD), retEPERM},
		{"open_by_handle_at", native(unix.SYS_OPEN_BY_HANDLE_AT), retEPERM},
		{"name_to_handle_at", native(unix.SYS_NAME_TO_HANDLE_AT), retEPERM},
		{"swapon", native(unix.SYS_SWAPON), retEPERM},
		{"swapoff", native(unix.SYS_SWAPOFF), retEPERM},
		{"io_uring_setup", native(unix.SYS_IO_URING_SETUP), retEPERM},
		{"io_uring_enter", native(unix.SYS_IO_URING_ENTER), retEPERM},
		{"io_uring_register", native(unix.SYS_IO_URING_REGISTER), retEPERM},
		{"acct", native(unix.SYS_ACCT), retEPERM},
		{"clock_adjtime", native(unix.SYS_CLOCK_ADJTIME), retEPERM},
		{"clock_settime", native(unix.SYS_CLOCK_SETTIME), retEPERM},
		{"settimeofday", native(unix.SYS_SETTIMEOFDAY), retEPERM},
		{"create_module", native(unix.SYS_CREATE_MODULE), retEPERM},
		{"get_kernel_syms", native(unix.SYS_GET_KERNEL_SYMS), retEPERM},
		{"query_module", native(unix.SYS_QUERY_MODULE), retEPERM},
		{"get_mempolicy", native(unix.SYS_GET_MEMPOLICY), retEPERM},
		{"set_mempolicy", native(unix.SYS_SET_MEMPOLICY), retEPERM},
		{"mbind", native(unix.SYS_MBIND), retEPERM},
		{"move_pages", native(unix.SYS_MOVE_PAGES), retEPERM},
		{"migrate_pages", native(unix.SYS_MIGRATE_PAGES), retEPERM},
		{"ioperm", native(unix.SYS_IOPERM), retEPERM},
		{"iopl", native(unix.SYS_IOPL), retEPERM},
		{"kcmp", native(unix.SYS_KCMP), retEPERM},
		{"pidfd_getfd", native(unix.SYS_PIDFD_GETFD), retEPERM},
		{"lookup_dcookie", native(unix.SYS_LOOKUP_DCOOKIE), retEPERM},
		{"nfsservctl", native(unix.SYS_NFSSERVCTL), retEPERM},
		{"quotactl", native(unix.SYS_QUOTACTL), retEPERM},
		{"sysfs", native(unix.SYS_SYSFS), retEPERM},
		{"_sysctl", native(unix.SYS__SYSCTL), retEPERM},
		{"uselib", native(unix.SYS_USELIB), retEPERM},
		{"ustat", native(unix.SYS_USTAT), retEPERM},
		{"fanotify_init", native(unix.SYS_FANOTIFY_INIT), retEPERM},
		{"syslog", native(unix.SYS_SYSLOG), retEPERM},
		{"vhangup", native(unix.SYS_VHANGUP), retEPERM},

		// clone: namespaces refused, fork and threads allowed.
		{"clone CLONE_NEWUSER", native(unix.SYS_CLONE, unix.CLONE_NEWUSER|uint64(unix.SIGCHLD)), retEPERM},
		{"clone CLONE_NEWNS", native(unix.SYS_CLONE, unix.CLONE_NEWNS|uint64(unix.SIGCHLD)), retEPERM},
		{"clone CLONE_NEWUTS", native(unix.SYS_CLONE, unix.CLONE_NEWUTS), retEPERM},
		{"clone CLONE_NEWIPC", native(unix.SYS_CLONE, unix.CLONE_NEWIPC), retEPERM},
		{"clone CLONE_NEWPID", native(unix.SYS_CLONE, unix.CLONE_NEWPID|uint64(unix.SIGCHLD)), retEPERM},
		{"clone CLONE_NEWNET", native(unix.SYS_CLONE, unix.CLONE_NEWNET), retEPERM},
		{"clone CLONE_NEWCGROUP", native(unix.SYS_CLONE, unix.CLONE_NEWCGROUP), retEPERM},
		{"clone CLONE_NEWTIME bit", native(unix.SYS_CLONE, unix.CLONE_NEWTIME), retEPERM},
		{"clone CLONE_NEWUSER with junk in upper half", native(unix.SYS_CLONE, junk|unix.CLONE_NEWUSER), retEPERM},
		{"clone fork-like", native(unix.SYS_CLONE, unix.CLONE_CHILD_SETTID|unix.CLONE_CHILD_CLEARTID|uint64(unix.SIGCHLD)), retAllow},
		{"clone vfork-like", native(unix.SYS_CLONE, unix.CLONE_VM|unix.CLONE_VFORK|uint64(unix.SIGCHLD)), retAllow},
		{"clone Go thread", native(unix.SYS_CLONE, threadFlags), retAllow},
		{"clone glibc thread", native(unix.SYS_CLONE, threadFlags|unix.CLONE_SETTLS|unix.CLONE_PARENT_SETTID|unix.CLONE_CHILD_CLEARTID), retAllow},
		{"clone fork with junk in upper half", native(unix.SYS_CLONE, junk|uint64(unix.SIGCHLD)), retAllow},
		{"clone3", native(unix.SYS_CLONE3), retNOSYS},
		{"clone3 with plain args", native(unix.SYS_CLONE3, 0x7fff0000, 88), retNOSYS},

		// Sockets.
		{"socket AF_PACKET", native(unix.SYS_SOCKET, unix.AF_PACKET, unix.SOCK_RAW, 0x300), retEPERM},
		{"socket AF_PACKET SOCK_DGRAM", native(unix.SYS_SOCKET, unix.AF_PACKET, unix.SOCK_DGRAM), retEPERM},
		{"socket AF_PACKET with junk in upper half", native(unix.SYS_SOCKET, junk|unix.AF_PACKET, unix.SOCK_RAW), retEPERM},
		{"socket AF_INET SOCK_RAW|SOCK_CLOEXEC", native(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP), retEPERM},
		{"socket AF_INET SOCK_RAW|SOCK_NONBLOCK|SOCK_CLOEXEC", native(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW), retEPERM},
		{"socket AF_INET6 SOCK_RAW", native(unix.SYS_SOCKET, unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_ICMPV6), retEPERM},
		{"socket AF_INET SOCK_RAW type junk", native(unix.SYS_SOCKET, unix.AF_INET, junk|unix.SOCK_RAW), retEPERM},
		{"socket AF_INET SOCK_PACKET", native(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_PACKET, 0x300), retEPERM},
		{"socket AF_INET SOCK_STREAM", native(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM), retAllow},
		{"socket AF_INET SOCK_STREAM|SOCK_CLOEXEC", native(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP), retAllow},
		{"socket AF_INET SOCK_DGRAM", native(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK), retAllow},
		{"socket AF_INET6 SOCK_STREAM", native(unix.SYS_SOCKET, unix.AF_INET6, unix.SOCK_STREAM), retAllow},
		{"socket AF_INET6 SOCK_DGRAM", native(unix.SYS_SOCKET, unix.AF_INET6, unix.SOCK_DGRAM), retAllow},
		{"socket AF_UNIX", native(unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC), retAllow},
		{"socket AF_UNSPEC (kernel refuses)", native(unix.SYS_SOCKET, unix.AF_UNSPEC, unix.SOCK_STREAM), retAllow},
		{"socket AF_NETLINK NETLINK_ROUTE", native(unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE), retAllow},
		{"socket AF_NETLINK NETLINK_AUDIT", native(unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_AUDIT), retEPERM},
		{"socket AF_NETLINK NETLINK_NETFILTER", native(unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_NETFILTER), retEPERM},
		{"socket AF_NETLINK NETLINK_KOBJECT_UEVENT", native(unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_DGRAM, unix.NETLINK_KOBJECT_UEVENT), retEPERM},
		{"socket AF_NETLINK protocol junk", native(unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_RAW, junk), retEPERM},
		{"socket AF_VSOCK", native(unix.SYS_SOCKET, unix.AF_VSOCK, unix.SOCK_STREAM), retEPERM},
		{"socket AF_ALG", native(unix.SYS_SOCKET, unix.AF_ALG, unix.SOCK_SEQPACKET), retEPERM},
		{"socket AF_KEY", native(unix.SYS_SOCKET, unix.AF_KEY, unix.SOCK_RAW, 2), retEPERM},
		{"socket AF_BLUETOOTH", native(unix.SYS_SOCKET, unix.AF_BLUETOOTH, unix.SOCK_RAW), retEPERM},
		{"socket AF_XDP", native(unix.SYS_SOCKET, unix.AF_XDP, unix.SOCK_RAW), retEPERM},
		{"socket AF_TIPC", native(unix.SYS_SOCKET, unix.AF_TIPC, unix.SOCK_RDM), retEPERM},
		{"socket AF_AX25", native(unix.SYS_SOCKET, unix.AF_AX25, unix.SOCK_SEQPACKET), retEPERM},
		{"socket AF_APPLETALK", native(unix.SYS_SOCKET, unix.AF_APPLETALK, unix.SOCK_DGRAM), retEPERM},
		{"socket family 200 (not yet invented)", native(unix.SYS_SOCKET, 200, unix.SOCK_STREAM), retEPERM},
		{"socketpair AF_UNIX", native(unix.SYS_SOCKETPAIR, unix.AF_UNIX, unix.SOCK_STREAM), retAllow},
		{"socketpair AF_INET", native(unix.SYS_SOCKETPAIR, unix.AF_INET, unix.SOCK_STREAM), retEPERM},
		{"socketpair AF_UNIX with junk in upper half", native(unix.SYS_SOCKETPAIR, junk|unix.AF_UNIX, unix.SOCK_STREAM), retEPERM},

		// Terminals.
		{"ioctl TIOCSTI", native(unix.SYS_IOCTL, 0, unix.TIOCSTI, 0x7ffc0000), retEPERM},
		{"ioctl TIOCSTI with junk in upper half", native(unix.SYS_IOCTL, 0, junk|unix.TIOCSTI), retEPERM},
		{"ioctl TIOCLINUX", native(unix.SYS_IOCTL, 0, unix.TIOCLINUX), retEPERM},
		{"ioctl TCGETS", native(unix.SYS_IOCTL, 0, unix.TCGETS, 0x7ffc0000), retAllow},
		{"ioctl TIOCGWINSZ", native(unix.SYS_IOCTL, 1, unix.TIOCGWINSZ), retAllow},
		{"ioctl FIONREAD", native(unix.SYS_IOCTL, 3, unix.TIOCINQ), retAllow},

		// personality: Docker's safe values only.
		{"personality PER_LINUX", native(unix.SYS_PERSONALITY, 0), retAllow},
		{"personality PER_LINUX32", native(unix.SYS_PERSONALITY, 0x8), retAllow},
		{"personality UNAME26", native(unix.SYS_PERSONALITY, 0x20000), retAllow},
		{"personality UNAME26|PER_LINUX32", native(unix.SYS_PERSONALITY, 0x20008), retAllow},
		{"personality query", native(unix.SYS_PERSONALITY, 0xffffffff), retAllow},
		{"personality ADDR_NO_RANDOMIZE", native(unix.SYS_PERSONALITY, 0x0040000), retEPERM},
		{"personality READ_IMPLIES_EXEC", native(unix.SYS_PERSONALITY, 0x0400000), retEPERM},
		{"personality all but one bit", native(unix.SYS_PERSONALITY, 0xfffffffe), retEPERM},
		{"personality PER_LINUX with junk in upper half", native(unix.SYS_PERSONALITY, 1<<32), retEPERM},

		// Foreign architectures.
		{"x32 unshare", native(unix.SYS_UNSHARE|x32SysBit, unix.CLONE_NEWUSER), retEPERM},
		{"x32 read", native(unix.SYS_READ | x32SysBit), retEPERM},
		{"x32 getppid", native(unix.SYS_GETPPID | x32SysBit), retEPERM},
		{"i386 unshare", seccompData{nr: i386Unshare, arch: auditArchI386, args: [6]uint64{unix.CLONE_NEWUSER}}, retEPERM},
		{"i386 read", seccompData{nr: i386Read, arch: auditArchI386}, retEPERM},
		{"aarch64 read", seccompData{nr: 63, arch: auditArchAArch64}, retEPERM},
		{"arch 0", seccompData{nr: unix.SYS_READ}, retEPERM},
		// nr -1 is how a tracer skips a call; the kernel fails it with ENOSYS
		// itself. libseccomp lets it through to the default.
		{"nr -1", native(-1), retAllow},

		// What agents do all day.
		{"read", native(unix.SYS_READ, 0, 0x1000, 10), retAllow},
		{"write", native(unix.SYS_WRITE, 1), retAllow},
		{"openat", native(unix.SYS_OPENAT, unix.AT_FDCWD&0xffffffff, 0x1000, unix.O_RDONLY|unix.O_CLOEXEC), retAllow},
		{"close", native(unix.SYS_CLOSE, 3), retAllow},
		{"mmap", native(unix.SYS_MMAP, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS), retAllow},
		{"mprotect", native(unix.SYS_MPROTECT), retAllow},
		{"brk", native(unix.SYS_BRK), retAllow},
		{"execve", native(unix.SYS_EXECVE), retAllow},
		{"execveat", native(unix.SYS_EXECVEAT), retAllow},
		{"wait4", native(unix.SYS_WAIT4), retAllow},
		{"waitid", native(unix.SYS_WAITID), retAllow},
		{"futex", native(unix.SYS_FUTEX), retAllow},
		{"rt_sigaction", native(unix.SYS_RT_SIGACTION), retAllow},
		{"getpid", native(unix.SYS_GETPID), retAllow},
		{"getppid", native(unix.SYS_GETPPID), retAllow},
		{"clock_gettime", native(unix.SYS_CLOCK_GETTIME), retAllow},
		{"epoll_pwait", native(unix.SYS_EPOLL_PWAIT), retAllow},
		{"connect", native(unix.SYS_CONNECT), retAllow},
		{"accept4", native(unix.SYS_ACCEPT4), retAllow},
		{"sendto", native(unix.SYS_SENDTO), retAllow},
		{"recvfrom", native(unix.SYS_RECVFROM), retAllow},
		{"prctl", native(unix.SYS_PRCTL, unix.PR_SET_NAME), retAllow},
		{"seccomp (stacking a stricter filter)", native(unix.SYS_SECCOMP), retAllow},
		{"landlock_restrict_self", native(unix.SYS_LANDLOCK_RESTRICT_SELF), retAllow},
		{"memfd_create", native(unix.SYS_MEMFD_CREATE), retAllow},
		{"pidfd_open", native(unix.SYS_PIDFD_OPEN), retAllow},
		{"statx", native(unix.SYS_STATX), retAllow},
		{"getdents64", native(unix.SYS_GETDENTS64), retAllow},
		{"pipe2", native(unix.SYS_PIPE2), retAllow},
		{"kill", native(unix.SYS_KILL), retAllow},
		{"rseq", native(unix.SYS_RSEQ), retAllow},
		{"arch_prctl", native(unix.SYS_ARCH_PRCTL), retAllow},
		{"getrandom", native(unix.SYS_GETRANDOM), retAllow},
		{"exit_group", native(unix.SYS_EXIT_GROUP), retAllow},
		{"nr 1000 (deny list: unknown calls pass)", native(1000), retAllow},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := f.run(t, tc.in); got != tc.want {
				t.Errorf("%v: %s, want %s", tc.in, retName(got), retName(tc.want))
			}
		})
	}
}

// TestBPFEveryRule runs each rule's first argument match (or none) through the
// compiled program, so a rule added later is covered without a new table row.
func TestBPFEveryRule(t *testing.T) {
	p := Default()
	f := buildVM(t, p)
	for _, r := range p.Rules {
		nr, err := resolve(r)
		if err != nil {
			t.Fatal(err)
		}
		if nr < 0 {
			continue // not a system call on this architecture
		}
		var args [6]uint64
		if len(r.Any) > 0 {
			args = satisfy(r.Any[0])
		}
		want := retErrno | uint32(r.Action.Errno())
		if got := f.run(t, native(int(nr), args[:]...)); got != want {
			t.Errorf("%s %q args %#x: %s, want %s", r.Syscall, r.When, args, retName(got), retName(want))
		}
	}
}

// satisfy returns argument registers for which m holds.
func satisfy(m Match) [6]uint64 {
	var args [6]uint64
	for _, c := range m {
		switch c.Op {
		case OpEqual, OpMaskedEqual:
			args[c.Arg] = c.Value
		case OpNotEqual:
			args[c.Arg] = c.Value + 1
		case OpGreater:
			args[c.Arg] = c.Value + 1
		}
	}
	return args
}

// reference decides a call the way the profile says, with libseccomp's
// architecture prologue (foreign arch and x32 numbers take the bad-arch
// action; nr -1 passes to the rules).
func reference(p Profile, multi map[int32][]Rule, d seccompData) uint32 {
	ret := func(a Action) uint32 {
		if a == ActAllow {
			return retAllow
		}
		return retErrno | uint32(a.Errno())
	}
	if d.arch != auditArchX86_64 || uint32(d.nr) >= x32SysBit && d.nr != -1 {
		return ret(p.BadArchAction)
	}
	for _, r := range multi[d.nr] {
		if r.Applies(d.args) {
			return ret(r.Action)
		}
	}
	return ret(p.DefaultAction)
}

type policyChecker struct {
	p      Profile
	f      vmFilter
	multi  map[int32][]Rule
	nrs    []int32
	consts []uint64
}

func newPolicyChecker(t testing.TB) *policyChecker {
	p := Default()
	c := &policyChecker{p: p, f: buildVM(t, p), multi: map[int32][]Rule{}}
	for _, r := range p.Rules {
		nr, err := resolve(r)
		if err != nil {
			t.Fatal(err)
		}
		if nr < 0 {
			continue
		}
		if len(c.multi[int32(nr)]) == 0 {
			c.nrs = append(c.nrs, int32(nr))
		}
		c.multi[int32(nr)] = append(c.multi[int32(nr)], r)
		for _, m := range r.Any {
			for _, cond := range m {
				c.consts = append(c.consts, cond.Value, cond.Value+1, cond.Value-1, cond.Mask, cond.Value|0xffff_ffff_0000_0000)
			}
		}
	}
	c.nrs = append(c.nrs, unix.SYS_READ, unix.SYS_GETPPID, -1, 1000, x32SysBit|unix.SYS_UNSHARE, x32SysBit-1)
	return c
}

func (c *policyChecker) check(t testing.TB, d seccompData) {
	t.Helper()
	want := reference(c.p, c.multi, d)
	if got := c.f.run(t, d); got != want {
		t.Fatalf("%v: BPF says %s, profile says %s", d, retName(got), retName(want))
	}
}

// TestBPFAgreesWithProfile compares the compiled program with the profile's
// own semantics over many generated calls: numbers that have rules and some
// that do not, arguments drawn from the rules' constants, their neighbours,
// single bits, junk in the upper half and random words.
func TestBPFAgreesWithProfile(t *testing.T) {
	c := newPolicyChecker(t)
	rng := rand.New(rand.NewPCG(3, 4))
	arg := func() uint64 {
		switch rng.IntN(5) {
		case 0:
			return c.consts[rng.IntN(len(c.consts))]
		case 1:
			return c.consts[rng.IntN(len(c.consts))] | c.consts[rng.IntN(len(c.consts))]
		case 2:
			return 1 << rng.IntN(64)
		case 3:
			return uint64(rng.Uint32())
		}
		return rng.Uint64()
	}
	archs := []uint32{auditArchX86_64, auditArchX86_64, auditArchX86_64, auditArchI386, auditArchAArch64}
	for range 50000 {
		d := seccompData{nr: c.nrs[rng.IntN(len(c.nrs))], arch: archs[rng.IntN(len(archs))], ip: rng.Uint64()}
		for i := range d.args {
			d.args[i] = arg()
		}
		c.check(t, d)
	}
}

func FuzzBPFAgreesWithProfile(f *testing.F) {
	f.Add(int32(unix.SYS_SOCKET), uint32(auditArchX86_64), uint64(unix.AF_INET), uint64(unix.SOCK_RAW), uint64(0), uint64(0))
	f.Add(int32(unix.SYS_CLONE), uint32(auditArchX86_64), uint64(unix.CLONE_NEWUSER), uint64(0), uint64(0), uint64(0))
	f.Add(int32(unix.SYS_PERSONALITY), uint32(auditArchX86_64), uint64(0xffffffff), uint64(0), uint64(0), uint64(0))
	f.Add(int32(unix.SYS_IOCTL), uint32(auditArchX86_64), uint64(0), uint64(unix.TIOCSTI), uint64(0), uint64(0))
	f.Add(int32(i386Unshare), uint32(auditArchI386), uint64(unix.CLONE_NEWUSER), uint64(0), uint64(0), uint64(0))
	c := newPolicyChecker(f)
	f.Fuzz(func(t *testing.T, nr int32, arch uint32, a0, a1, a2, a3 uint64) {
		c.check(t, seccompData{nr: nr, arch: arch, args: [6]uint64{a0, a1, a2, a3}})
	})
}

func TestBPFFitsTheKernelLimit(t *testing.T) {
	const bpfMaxInsns = 4096
	f := buildVM(t, Default())
	if f.size > bpfMaxInsns {
		t.Fatalf("%d instructions, kernel limit %d", f.size, bpfMaxInsns)
	}
	t.Logf("%d BPF instructions", f.size)
}
