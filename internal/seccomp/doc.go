// Package seccomp owns the syscall filter every Cortex agent runs under: the
// policy as data ([Profile], [Default], [Rules]), its compilation to classic
// BPF through libseccomp ([Profile.Build], [Filter.BPF]) and loading it into
// the calling process ([Filter.Load]).
//
// It must not decide anything else about the sandbox: it does not set the
// uid, drop capabilities, enter namespaces or exec the agent. The sandbox init
// calls it last, right before exec: set no_new_privs, [Filter.Load], exec.
// A loaded filter is inherited across fork, clone and execve and can never be
// removed, so every child and grandchild of the agent runs under it.
//
// # Deny list, default allow
//
// The filter allows every system call except those listed in [Default]. An
// allow list (as in nsjail or a tight Docker profile) would have to know every
// call any interpreter, native extension, JIT, package manager or subprocess
// an agent brings might make; agents run arbitrary Python and Node code with
// arbitrary wheels and addons, and a missing entry fails far from its cause.
// So the filter removes what agents never need and what has been the way in
// for container escapes and kernel exploits: mount and the new mount API,
// namespace creation and entry, ptrace and cross-process memory access,
// kernel modules, kexec, reboot, bpf, perf, the keyring, userfaultfd,
// io_uring, file handles, swap, clock setting, NUMA policy, raw and packet
// sockets and the rarer socket families, terminal injection, and the rest of
// what Docker's default profile refuses. What it means: a new kernel system
// call is allowed until it is added here (the filter cannot refuse what it
// does not name), so the list must be reviewed when the kernel grows; the
// other layers (no capabilities, an unprivileged uid, no_new_privs, private
// namespaces, landlock) are what make most of the remaining calls harmless.
//
// # How refusals look
//
// A refused call fails with EPERM, never a kill, so programs degrade the way
// they do when a privilege is missing. clone3 fails with ENOSYS instead: its
// flags live in memory the filter cannot read, and ENOSYS makes glibc (and
// Go, and musl) fall back to clone, whose flags the filter does inspect. This
// is what Docker does.
//
// # Architecture
//
// The filter is built for the native architecture only (amd64; arm64 uses the
// same numbers but is not tested here). A call made through another entry
// point — the i386 int $0x80 gate (AUDIT_ARCH_I386) or an x32 system call
// number (bit 0x40000000 set on x86_64) — fails with EPERM before any rule is
// looked at, so none of them can reach a call the native rules refuse under a
// different number. libseccomp generates both checks; the tests read them back
// out of the exported BPF instead of trusting that.
//
// # Arguments are 64-bit registers
//
// seccomp sees the full 64-bit argument registers, while the kernel reads
// int arguments (socket's domain, type and protocol, ioctl's request,
// personality's persona, clone's low flag word) as 32 bits. A rule that
// compared the full register against AF_PACKET could be dodged with junk in
// the upper half. Every rule on such an argument therefore either masks it to
// its low 32 bits or, where it must compare the whole register, is written so
// that junk in the upper half makes the call refused, not allowed.
//
// # Sockets
//
// Agents get AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK with NETLINK_ROUTE
// (glibc's getaddrinfo with AI_ADDRCONFIG, Go's net.Interfaces and Node's
// os.networkInterfaces read interface addresses over it). Every other family
// is refused — AF_PACKET (raw frames), AF_VSOCK (reaches the host over the
// hypervisor's socket), AF_ALG (the kernel crypto API), AF_KEY, AF_BLUETOOTH,
// AF_XDP and the rest, including families added to the kernel later — as is
// any netlink protocol other than NETLINK_ROUTE (audit, netfilter, uevent,
// sock_diag, generic netlink). SOCK_RAW on AF_INET and AF_INET6 is refused,
// with the type masked by SOCK_TYPE_MASK so SOCK_NONBLOCK|SOCK_CLOEXEC do not
// hide it, and so is (AF_INET, SOCK_PACKET), which the kernel silently turns
// into an AF_PACKET socket. socketpair is refused for anything but AF_UNIX.
//
// # What users notice
//
// Software that sandboxes itself with user namespaces (Chromium and
// Electron) must be started with its own sandbox off (--no-sandbox), as in
// Docker. NUMA-aware libraries see NUMA as unavailable. io_uring users (libuv
// in Node) fall back to their thread pools. Debuggers and profilers that
// attach to processes (gdb, py-spy, strace, perf) do not work.
package seccomp
