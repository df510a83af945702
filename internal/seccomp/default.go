package seccomp

// Default is the profile every agent runs under: allow everything except
// the rules below; calls from a foreign architecture fail with EPERM.
func Default() Profile {
	var rules []Rule
	deny := func(reason string, names ...string) {
		for _, n := range names {
			rules = append(rules, Rule{Syscall: n, Action: ActEPERM, Reason: reason})
		}
	}

	// The mount tree is fixed before the agent starts.
	deny("changes the mount tree, which the sandbox fixed before the agent started",
		"mount", "umount", "umount2", "pivot_root", "chroot",
		"move_mount", "open_tree", "fsopen", "fsmount", "fsconfig", "fspick", "mount_setattr")
	rules = append(rules, Rule{Syscall: "open_tree_attr", Nr: 467, Action: ActEPERM,
		Reason: "changes the mount tree, which the sandbox fixed before the agent started"})

	// Namespaces.
	deny("creates or enters namespaces: the first step of most container escapes and of user-namespace kernel exploits",
		"unshare", "setns")
	rules = append(rules, Rule{
		Syscall: "clone",
		Action:  ActEPERM,
		Any:     cloneNamespaceFlags(),
		When:    "flags include CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP or CLONE_NEWTIME (low 32 bits, as the kernel reads them)",
		Reason:  "creates namespaces; fork and thread creation stay allowed",
	}, Rule{
		Syscall: "clone3",
		Action:  ActENOSYS,
		Reason:  "its flags are in memory the filter cannot read; ENOSYS makes libc fall back to clone, whose flags are checked",
	})

	// Other processes.
	deny("reads, writes or controls another process",
		"ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd", "kcmp")

	// The kernel itself.
	deny("loads or removes kernel modules",
		"init_module", "finit_module", "delete_module", "create_module", "get_kernel_syms", "query_module")
	deny("replaces or stops the running kernel", "kexec_load", "kexec_file_load", "reboot")
	deny("loads programs into the kernel or observes other processes and the kernel; a large exploit surface",
		"bpf", "perf_event_open")
	deny("the kernel keyring is not namespaced", "add_key", "request_key", "keyctl")
	deny("lets a process stall kernel page faults, used to win kernel races in exploits", "userfaultfd")
	deny("io_uring performs I/O (even opening sockets) without the system calls this filter checks; a large exploit surface",
		"io_uring_setup", "io_uring_enter", "io_uring_register")
	deny("opens files by handle, bypassing path-based checks (the 'shocker' container escape)",
		"open_by_handle_at", "name_to_handle_at")
	deny("swap is the host's", "swapon", "swapoff")
	deny("the system clock is not namespaced", "settimeofday", "stime", "clock_settime", "clock_adjtime")
	deny("host administration agents never need",
		"acct", "quotactl", "quotactl_fd", "syslog", "vhangup", "fanotify_init",
		"lookup_dcookie", "nfsservctl", "sysfs", "_sysctl", "ustat", "uselib")
	deny("NUMA placement is the runtime's decision (Docker refuses these without CAP_SYS_NICE)",
		"get_mempolicy", "set_mempolicy", "set_mempolicy_home_node", "mbind", "move_pages", "migrate_pages")
	deny("direct hardware port access and 8086 mode", "iopl", "ioperm", "vm86", "vm86old")
	rules = append(rules, Rule{
		Syscall: "personality",
		Action:  ActEPERM,
		Any:     personalityMatches(),
		When:    "persona is not one of 0 (PER_LINUX), 0x8 (PER_LINUX32), 0x20000 (UNAME26), 0x20008 or 0xffffffff (query), as Docker allows",
		Reason:  "other personality flags turn off address-space randomisation or make data executable",
	})

	// Terminals.
	rules = append(rules, Rule{
		Syscall: "ioctl",
		Action:  ActEPERM,
		Any:     []Match{{lower32(1, tiocsti)}},
		When:    "request is TIOCSTI",
		Reason:  "pushes input into a terminal another process reads: command injection into the user's shell",
	}, Rule{
		Syscall: "ioctl",
		Action:  ActEPERM,
		Any:     []Match{{lower32(1, tioclinux)}},
		When:    "request is TIOCLINUX",
		Reason:  "console selection and paste can inject input into the console",
	})

	// Sockets.
	otherFamilies := []Match{{{Arg: 0, Op: OpGreater, Value: afNetlink}}}
	for _, af := range []uint64{afAX25, afIPX, afAppletalk, afNetROM, afBridge, afATMPVC, afX25, afROSE, afDECnet, afNetBEUI, afSecurity, afKey} {
		otherFamilies = append(otherFamilies, Match{lower32(0, af)})
	}
	rules = append(rules, Rule{
		Syscall: "socket",
		Action:  ActEPERM,
		Any:     otherFamilies,
		When:    "domain is not AF_UNIX, AF_INET, AF_INET6 or AF_NETLINK (AF_UNSPEC is left to the kernel, which refuses it)",
		Reason:  "packet, vsock (reaches the host), alg (kernel crypto), key, bluetooth, xdp and every other family: kernel surface agents never need",
	}, Rule{
		Syscall: "socket",
		Action:  ActEPERM,
		Any: []Match{
			{lower32(0, afInet), {Arg: 1, Op: OpMaskedEqual, Mask: sockTypeMask, Value: sockRaw}},
			{lower32(0, afInet6), {Arg: 1, Op: OpMaskedEqual, Mask: sockTypeMask, Value: sockRaw}},
			{lower32(0, afInet), {Arg: 1, Op: OpMaskedEqual, Mask: sockTypeMask, Value: sockPacket}},
		},
		When:   "AF_INET or AF_INET6 with type SOCK_RAW, or AF_INET with SOCK_PACKET (type & SOCK_TYPE_MASK, so SOCK_NONBLOCK|SOCK_CLOEXEC do not hide it)",
		Reason: "raw sockets forge packets and sniff traffic; the kernel turns (AF_INET, SOCK_PACKET) into a packet socket",
	}, Rule{
		Syscall: "socket",
		Action:  ActEPERM,
		Any:     []Match{{lower32(0, afNetlink), {Arg: 2, Op: OpNotEqual, Value: netlinkRoute}}},
		When:    "AF_NETLINK with a protocol other than NETLINK_ROUTE",
		Reason:  "audit, netfilter, uevent, sock_diag and generic netlink are host administration; NETLINK_ROUTE stays for reading interface addresses",
	}, Rule{
		Syscall: "socketpair",
		Action:  ActEPERM,
		Any:     []Match{{{Arg: 0, Op: OpNotEqual, Value: afUnix}}},
		When:    "domain is not AF_UNIX",
		Reason:  "only unix socket pairs exist for agents",
	})

	return Profile{DefaultAction: ActAllow, BadArchAction: ActEPERM, Rules: rules}
}

// lower32 compares the low 32 bits of argument arg with v, as the kernel does
// for int arguments, so junk in the upper half of the register cannot hide v.
func lower32(arg uint, v uint64) Cond {
	return Cond{Arg: arg, Op: OpMaskedEqual, Mask: lower32Mask, Value: v}
}

// flagSet matches when every bit of flag is set in argument arg.
func flagSet(arg uint, flag uint64) Cond {
	return Cond{Arg: arg, Op: OpMaskedEqual, Mask: flag, Value: flag}
}

func cloneNamespaceFlags() []Match {
	var ms []Match
	for _, f := range []uint64{cloneNewNS, cloneNewUTS, cloneNewIPC, cloneNewUser, cloneNewPID, cloneNewNet, cloneNewCgroup, cloneNewTime} {
		ms = append(ms, Match{flagSet(0, f)})
	}
	return ms
}

// personalitySafe are the bits the personalities Docker allows may set
// (PER_LINUX32 and UNAME26); the query value 0xffffffff is handled apart.
const personalitySafe = perLinux32 | perUname26

// personalityMatches refuses every persona except 0, 0x8, 0x20000, 0x20008
// and 0xffffffff. libseccomp allows only one comparison per argument in a
// rule, so "some unsafe bit set and not 0xffffffff" has to be spelled as a
// union of single comparisons:
//
//   - arg > 0xffffffff: junk in the upper half, refused (the kernel would
//     truncate it; refusing is the safe side).
//   - For every bit c, one match "bit c clear and bit σ(c) set", where σ maps
//     every bit to an unsafe bit and runs through the 30 unsafe bits as one
//     cycle.
//
// A 32-bit persona x that sets an unsafe bit and is not 0xffffffff is caught:
// let T be its clear bits (not empty). If no match held, σ would map T into
// T; if T holds an unsafe bit, the cycle puts all 30 unsafe bits in T, so x
// sets none, a contradiction; if T holds only safe bits, σ of any of them is
// an unsafe bit outside T, a contradiction. The five allowed values are never
// caught: each match needs an unsafe bit set and some bit clear.
func personalityMatches() []Match {
	ms := []Match{{{Arg: 0, Op: OpGreater, Value: lower32Mask}}}
	var unsafe []uint
	for b := uint(0); b < 32; b++ {
		if personalitySafe&(1<<b) == 0 {
			unsafe = append(unsafe, b)
		}
	}
	next := map[uint]uint{}
	for i, b := range unsafe {
		next[b] = unsafe[(i+1)%len(unsafe)]
	}
	for c := uint(0); c < 32; c++ {
		s, ok := next[c]
		if !ok {
			s = unsafe[0]
		}
		ms = append(ms, Match{{Arg: 0, Op: OpMaskedEqual, Mask: 1<<c | 1<<s, Value: 1 << s}})
	}
	return ms
}
