"""Sandbox escape attempts for Cortex's escape suite (e2e/escape_test.go).

Every attempt tries one way out of the agent sandbox. It raises when the way
is blocked (the expected outcome) and returns a description of what it got
when it is not (an escape). Nothing here ever does harm when it succeeds: an
attempt that gets a file open for writing closes it without writing, a
reboot attempt asks only to turn Ctrl-Alt-Del off, and so on.

Run as a program it performs every attempt (or those named) and prints one
JSON line each:

    {"msg": "attempt", "attempt": "read-etc-shadow", "via": "direct",
     "escaped": false, "error": "ENOENT", "detail": "...", "ms": 1}

"error" is the errno name (EPERM, ENOENT, ...), EAI_* for resolver errors,
TIMEOUT when the attempt ran out of time (a refusal, but not a fast one),
SIG<name> when an isolated child died of a signal, or a short code of ours
(EUID, EXIT1, HTTP, STRIPPED, ...) when the refusal came without an errno.

What the attempts need to know about the host (the daemon's pid, host paths,
listening ports) is in targets.json, which the test writes into the read
grant once the agents are up.
"""
import ctypes
import errno
import fcntl
import json
import mmap
import os
import select
import shutil
import signal
import socket
import ssl
import stat
import struct
import subprocess
import sys
import termios
import time

TARGETS = os.environ.get("CORTEX_ESCAPE_TARGETS", "/app/ro/targets.json")
RW = "/app/rw"
RO = "/app/ro"

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

# x86_64 system call numbers.
NR = {
    "clone": 56, "ptrace": 101, "pivot_root": 155, "mount": 165, "umount2": 166,
    "reboot": 169, "init_module": 175, "add_key": 248, "keyctl": 250, "unshare": 272,
    "perf_event_open": 298, "open_by_handle_at": 304, "setns": 308,
    "process_vm_readv": 310, "finit_module": 313, "bpf": 321, "userfaultfd": 323,
    "io_uring_setup": 425, "fsopen": 430, "pidfd_open": 434,
}
X32 = 0x40000000
CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x02000000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
I386_UNSHARE = 310


class Blocked(Exception):
    """The attempt was refused without an errno (a program said no, a file
    was masked, a bit was stripped)."""

    def __init__(self, code, detail):
        super().__init__(detail)
        self.code = code


def sys_call(name_or_nr, *args):
    nr = NR[name_or_nr] if isinstance(name_or_nr, str) else name_or_nr
    cargs = []
    for a in args:
        if isinstance(a, int):
            cargs.append(ctypes.c_long(a))
        elif isinstance(a, bytes):
            cargs.append(ctypes.c_char_p(a))
        else:
            cargs.append(a)
    r = libc.syscall(ctypes.c_long(nr), *cargs)
    if r == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


EAI = {getattr(socket, n): n for n in dir(socket) if n.startswith("EAI_")}


def describe(e):
    """(code, detail) for an exception."""
    if isinstance(e, Blocked):
        return e.code, str(e)
    detail = "%s: %s" % (type(e).__name__, e)
    if isinstance(e, (TimeoutError, socket.timeout, subprocess.TimeoutExpired)):
        return "TIMEOUT", detail
    if isinstance(e, socket.gaierror):
        return EAI.get(e.args[0], "EAI"), detail
    if isinstance(e, ssl.SSLError):
        return "SSL", detail
    if isinstance(e, OSError) and e.errno:
        return errno.errorcode.get(e.errno, str(e.errno)), detail
    return type(e).__name__, detail


def every(*fns):
    """Runs each variant of an attempt; the attempt escapes if any variant
    does, and is blocked if all are: with the first variant's error, or the
    first timeout if a variant was refused only by running out of time."""
    first = timeout = None
    for fn in fns:
        try:
            got = fn()
        except Exception as e:  # noqa: BLE001 - every refusal counts
            if first is None:
                first = e
            if timeout is None and describe(e)[0] == "TIMEOUT":
                timeout = e
            continue
        return got
    raise timeout or first


def in_child(fn, timeout=20):
    """Runs fn in a forked child, so an attempt that changes the process
    (a new namespace, a crash) cannot affect the next one."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            res = {"ok": fn()}
        except BaseException as e:  # noqa: BLE001
            code, detail = describe(e)
            res = {"code": code, "detail": detail}
        try:
            os.write(w, json.dumps(res).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(r)
            raise TimeoutError("isolated child did not finish in %ds" % timeout)
        ready, _, _ = select.select([r], [], [], left)
        if not ready:
            continue
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if not data:
        if os.WIFSIGNALED(status):
            sig = signal.Signals(os.WTERMSIG(status)).name
            raise Blocked(sig, "isolated child killed by " + sig)
        raise Blocked("EXIT%d" % os.waitstatus_to_exitcode(status), "isolated child reported nothing")
    res = json.loads(data)
    if "ok" in res:
        return res["ok"]
    raise Blocked(res["code"], res["detail"])


def read_some(path):
    with open(path, "rb") as f:
        data = f.read(256)
    return "read %d bytes of %s" % (len(data), path)


def open_for_write(path, flags=os.O_WRONLY, mode=0o644):
    fd = os.open(path, flags, mode)
    os.close(fd)
    return "opened %s for writing" % path


def run_tool(argv, ok=None, timeout=10):
    """Runs a program; a zero exit (or ok(stdout) when given) is an escape."""
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    out = (p.stdout + p.stderr).strip().replace("\n", " | ")[:300]
    if ok is not None:
        if ok(p):
            return "%s: %s" % (argv[0], out)
        raise Blocked("EXIT%d" % p.returncode, "%s: %s" % (argv[0], out))
    if p.returncode == 0:
        return "%s exited 0: %s" % (argv[0], out)
    raise Blocked("EXIT%d" % p.returncode, "%s: %s" % (argv[0], out))


# --- network helpers ---------------------------------------------------------

NET_TIMEOUT = 3.0


def tcp_exchange(host, port, payload=b"GET / HTTP/1.0\r\n\r\n", family=socket.AF_INET):
    """Connects and sends payload; an escape only when bytes come back (the
    egress gateway may accept a connection and then reset it)."""
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(NET_TIMEOUT)
    try:
        s.connect((host, port))
        if payload:
            s.sendall(payload)
        data = s.recv(256)
    finally:
        s.close()
    if not data:
        raise Blocked("EOF", "connected to %s:%d, closed without a byte" % (host, port))
    return "got %r from %s:%d" % (data[:60], host, port)


def http_exchange(host, port, request):
    """Sends request and reads the whole reply (the peer closes)."""
    s = socket.create_connection((host, port), timeout=NET_TIMEOUT)
    try:
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    if not data:
        raise Blocked("EOF", "connected to %s:%d, closed without a byte" % (host, port))
    return data


def udp_exchange(host, port, payload, family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(NET_TIMEOUT)
    try:
        s.connect((host, port))
        s.send(payload)
        data = s.recv(4096)
    finally:
        s.close()
    return data


def unix_connect(addr):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(NET_TIMEOUT)
    try:
        s.connect(addr)
        s.sendall(b"hello\n")
        data = s.recv(64)
    finally:
        s.close()
    return "connected to %r, got %r" % (addr, data)


def dns_query(name, qtype=1):
    qid = int.from_bytes(os.urandom(2), "big")
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return qid, q + b"\x00" + struct.pack(">HH", qtype, 1)


def dns_answers(resp):
    """(rcode, [IPv4 strings]) of a DNS response."""
    if len(resp) < 12:
        raise Blocked("BADDNS", "short DNS response")
    _, flags, qd, an, _, _ = struct.unpack(">HHHHHH", resp[:12])
    i = 12
    for _ in range(qd):
        while resp[i] != 0:
            i += resp[i] + 1
        i += 5
    addrs = []
    for _ in range(an):
        if resp[i] & 0xC0 == 0xC0:
            i += 2
        else:
            while resp[i] != 0:
                i += resp[i] + 1
            i += 1
        rtype, _, _, rdlen = struct.unpack(">HHIH", resp[i:i + 10])
        i += 10
        if rtype == 1 and rdlen == 4:
            addrs.append(socket.inet_ntoa(resp[i:i + 4]))
        i += rdlen
    return flags & 0xF, addrs


def resolvers():
    out = []
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    out.append(parts[1])
    except OSError:
        pass
    return out or ["127.0.0.1"]


def resolve_via_gateway(name):
    """Asks the agent's resolver directly (not /etc/hosts) for name."""
    _, q = dns_query(name)
    resp = udp_exchange(resolvers()[0], 53, q)
    rcode, addrs = dns_answers(resp)
    if not addrs:
        raise Blocked("NXDOMAIN" if rcode == 3 else "RCODE%d" % rcode, "resolver gave no address for %s" % name)
    return addrs[0]


def proxy_addr():
    for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        v = os.environ.get(k)
        if v:
            hostport = v.split("://", 1)[-1].rstrip("/")
            host, _, port = hostport.rpartition(":")
            return host, int(port)
    return "127.0.0.1", 3128


# --- the attempts ------------------------------------------------------------

ATTEMPTS = []


def attempt(name, isolate=False):
    def deco(fn):
        ATTEMPTS.append((name, fn, isolate))
        return fn
    return deco


# Reading host files outside the grants.

@attempt("read-etc-shadow")
def _(t):
    return read_some("/etc/shadow")


@attempt("read-daemon-state")
def _(t):
    return every(lambda: read_some(t["daemon_state"]), lambda: os.listdir(t["daemon_lib_dir"]) and "listed " + t["daemon_lib_dir"])


@attempt("connect-daemon-api")
def _(t):
    return unix_connect(t["daemon_socket"])


@attempt("read-sibling-host-dir")
def _(t):
    return every(lambda: read_some(t["victim_secret_host"]), lambda: "listed %s" % os.listdir(t["victim_dir_host"]))


@attempt("read-sibling-via-app")
def _(t):
    return every(lambda: read_some("/app/victim/secret.txt"), lambda: read_some("/app/../app/victim/secret.txt"))


@attempt("proc-init-root")
def _(t):
    return "listed /proc/1/root: %s" % os.listdir("/proc/1/root")[:5]


@attempt("proc-init-environ")
def _(t):
    return every(lambda: read_some("/proc/1/environ"), lambda: read_some("/proc/1/mem"))


@attempt("proc-daemon-environ")
def _(t):
    return every(lambda: read_some("/proc/%d/environ" % t["daemon_pid"]), lambda: "listed %s" % os.listdir("/proc/%d/root" % t["daemon_pid"]))


@attempt("proc-sibling-root")
def _(t):
    return every(lambda: "listed %s" % os.listdir("/proc/%d/root" % t["victim_init_pid"]),
                 lambda: read_some("/proc/%d/environ" % t["victim_agent_pid"]))


@attempt("overwrite-init-exe")
def _(t):
    # runc's CVE-2019-5736: the init is cortexd itself.
    return every(lambda: open_for_write("/proc/1/exe"), lambda: open_for_write("/proc/self/exe"))


@attempt("write-proc-sys")
def _(t):
    return every(lambda: open_for_write("/proc/sys/kernel/core_pattern"), lambda: open_for_write("/proc/sys/vm/drop_caches"),
                 lambda: open_for_write("/proc/sysrq-trigger"))


# Writing where no write grant is.

@attempt("write-read-grant")
def _(t):
    return open_for_write(RO + "/data.txt", os.O_WRONLY | os.O_APPEND)


@attempt("create-in-read-grant")
def _(t):
    return open_for_write(RO + "/created.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL)


@attempt("write-bundle")
def _(t):
    return every(lambda: open_for_write("/app/attacker.py", os.O_WRONLY | os.O_APPEND),
                 lambda: open_for_write("/app/created.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL))


@attempt("write-system-files")
def _(t):
    return every(lambda: open_for_write("/etc/passwd", os.O_WRONLY | os.O_APPEND),
                 lambda: open_for_write("/usr/bin/created", os.O_WRONLY | os.O_CREAT | os.O_EXCL),
                 lambda: open_for_write("/created", os.O_WRONLY | os.O_CREAT | os.O_EXCL),
                 lambda: open_for_write("/opt/cortex/shims/bootstrap.py", os.O_WRONLY | os.O_APPEND))


# Escaping the write grant.

@attempt("write-grant-dotdot")
def _(t):
    def at():
        # openat relative to the grant's directory fd.
        d = os.open(RW, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.close(os.open("../../dotdot-at.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=d))
            return "created /app/rw/../../dotdot-at.txt"
        finally:
            os.close(d)
    return every(lambda: open_for_write(RW + "/../dotdot.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL),
                 lambda: open_for_write(RW + "/../ro/dotdot.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL), at)


@attempt("write-grant-symlink")
def _(t):
    def through(name, target, leaf=""):
        link = "%s/%s-%d" % (RW, name, os.getpid())
        os.symlink(target, link)
        return open_for_write(link + leaf, os.O_WRONLY | os.O_CREAT)
    return every(lambda: through("link-outside", t["outside_file_host"]),
                 lambda: through("link-ro", RO + "/data.txt"),
                 lambda: through("link-up", "../../..", "/created-through-link"),
                 lambda: through("link-proc", "/proc/1/root/etc", "/created-through-link"))


@attempt("write-grant-hardlink")
def _(t):
    def link(src, name):
        os.link(src, "%s/%s-%d" % (RW, name, os.getpid()))
        return "hard-linked %s into the write grant" % src
    return every(lambda: link(RO + "/data.txt", "hl-ro"), lambda: link("/usr/bin/su", "hl-su"),
                 lambda: link("/app/attacker.py", "hl-app"), lambda: link("/etc/passwd", "hl-passwd"))


@attempt("rename-out-of-grant")
def _(t):
    p = "%s/mv-%d.txt" % (RW, os.getpid())
    with open(p, "w") as f:
        f.write("x")

    def mv(dst):
        os.rename(p, dst)
        return "renamed into " + dst
    return every(lambda: mv("/app/mv.txt"), lambda: mv(RO + "/mv.txt"), lambda: mv("/app/victim/mv.txt"))


def _setid_result(path):
    m = os.stat(path).st_mode
    if m & (stat.S_ISUID | stat.S_ISGID):
        return "%s has mode %o" % (path, m)
    raise Blocked("STRIPPED", "%s ended with mode %o" % (path, m))


@attempt("plant-setuid-in-grant")
def _(t):
    # A set-id file in a write grant is a set-id file on the host, owned by
    # the user who ran the swarm.
    base = "%s/suid-%d" % (RW, os.getpid())
    shutil.copyfile("/usr/bin/id", base)
    os.chmod(base, 0o755)

    def chmod(mode):
        os.chmod(base, mode)
        return _setid_result(base)

    def create(flags_mode):
        p = "%s-%o" % (base, flags_mode)
        os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, flags_mode))
        return _setid_result(p)

    def mknod():
        p = base + "-mknod"
        os.mknod(p, stat.S_IFREG | 0o4755)
        return _setid_result(p)

    def fchmod():
        fd = os.open(base, os.O_RDONLY)
        try:
            os.fchmod(fd, 0o4755)
        finally:
            os.close(fd)
        return _setid_result(base)
    return every(lambda: chmod(0o4755), lambda: chmod(0o2755), fchmod, lambda: create(0o4755), lambda: create(0o2755), mknod)


@attempt("file-capability-in-grant")
def _(t):
    p = "%s/fcap-%d" % (RW, os.getpid())
    shutil.copyfile("/usr/bin/id", p)
    # VFS_CAP_REVISION_2 | EFFECTIVE, permitted = CAP_SYS_ADMIN.
    blob = struct.pack("<IIIII", 0x02000001, 1 << 21, 0, 0, 0)
    os.setxattr(p, "security.capability", blob)
    return "set security.capability on " + p


@attempt("mknod-char-device")
def _(t):
    def mk(p):
        os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(1, 1))  # /dev/mem
        return "created char device " + p
    return every(lambda: mk("%s/mem-%d" % (RW, os.getpid())), lambda: mk("/tmp/mem-%d" % os.getpid()),
                 lambda: mk("/dev/shm/mem-%d" % os.getpid()))


@attempt("mknod-block-device")
def _(t):
    def mk(p):
        os.mknod(p, stat.S_IFBLK | 0o666, os.makedev(254, 0))  # virtio disk
        return "created block device " + p
    return every(lambda: mk("/tmp/disk-%d" % os.getpid()), lambda: mk("%s/disk-%d" % (RW, os.getpid())))


# Mounts, cgroups.

def _libc_mount(src, target, fstype, flags=0, data=None):
    if libc.mount(src, target, fstype, ctypes.c_ulong(flags), data) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return "mounted %s on %s" % (fstype, target)


@attempt("mount-tmpfs", isolate=True)
def _(t):
    return every(lambda: _libc_mount(b"none", b"/tmp", b"tmpfs"),
                 lambda: _libc_mount(b"/app/rw", b"/app/ro", None, 0x1000))  # MS_BIND


@attempt("umount-grant", isolate=True)
def _(t):
    def umount(p):
        if libc.umount2(p, 2) != 0:  # MNT_DETACH
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return "unmounted %s" % p
    return every(lambda: umount(b"/app/ro"), lambda: umount(b"/proc/sys"), lambda: umount(b"/app"))


@attempt("new-mount-api", isolate=True)
def _(t):
    return "fsopen gave fd %d" % sys_call("fsopen", b"tmpfs", 0)


@attempt("chroot", isolate=True)
def _(t):
    os.chroot("/tmp")
    return "chrooted"


@attempt("pivot-root", isolate=True)
def _(t):
    sys_call("pivot_root", b"/tmp", b"/tmp")
    return "pivoted"


@attempt("write-cgroup-files", isolate=True)
def _(t):
    fns = []
    for d in t["attacker_cgroups"]:
        for f in ("pids.max", "memory.limit_in_bytes", "cgroup.procs", "cpu.cfs_quota_us", "memory.max"):
            fns.append(lambda p="%s/%s" % (d, f): open_for_write(p))
    for f in ("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/unified/cgroup.procs", "/sys/fs/cgroup/cgroup.procs",
              "/proc/self/cgroup"):
        fns.append(lambda p=f: open_for_write(p))
    fns.append(lambda: _libc_mount(b"cgroup", b"/tmp", b"cgroup", 0, b"pids"))
    fns.append(lambda: _libc_mount(b"cgroup2", b"/tmp", b"cgroup2"))
    return every(*fns)


# Namespaces, also through the x32 and i386 entry points.

@attempt("unshare", isolate=True)
def _(t):
    def un(flag):
        if libc.unshare(flag) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return "unshare(%#x) succeeded" % flag
    return every(*[lambda f=f: un(f) for f in (CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWUTS,
                                               CLONE_NEWIPC, CLONE_NEWCGROUP)])


@attempt("unshare-x32", isolate=True)
def _(t):
    sys_call(X32 | NR["unshare"], CLONE_NEWUSER)
    return "x32 unshare succeeded"


@attempt("setns", isolate=True)
def _(t):
    def enter(path):
        fd = os.open(path, os.O_RDONLY)
        try:
            sys_call("setns", fd, 0)
        finally:
            os.close(fd)
        return "setns %s succeeded" % path
    return every(lambda: enter("/proc/self/ns/net"), lambda: enter("/proc/self/ns/user"), lambda: enter("/proc/1/ns/mnt"),
                 lambda: enter("/proc/%d/ns/net" % t["daemon_pid"]))


@attempt("setns-x32", isolate=True)
def _(t):
    fd = os.open("/proc/self/ns/net", os.O_RDONLY)
    sys_call(X32 | NR["setns"], fd, 0)
    return "x32 setns succeeded"


@attempt("clone-newuser", isolate=True)
def _(t):
    pid = sys_call("clone", CLONE_NEWUSER | signal.SIGCHLD, 0, 0, 0, 0)
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return "clone(CLONE_NEWUSER) made pid %d" % pid


@attempt("int80-unshare", isolate=True)
def _(t):
    # push rbx; mov eax, 310 (i386 unshare); mov ebx, CLONE_NEWUSER;
    # int 0x80; pop rbx; ret. A kernel without ia32 system calls kills the
    # child with SIGSEGV; ESCAPE_I386_VECTOR=129 (int 0x81, a vector no
    # kernel opens) simulates that on a kernel that has them.
    vector = int(os.environ.get("ESCAPE_I386_VECTOR", "128"))
    code = b"\x53\xb8" + struct.pack("<I", I386_UNSHARE) + b"\xbb" + struct.pack("<I", CLONE_NEWUSER) + b"\xcd" + bytes([vector]) + b"\x5b\xc3"
    m = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    m.write(code)
    fn = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
    r = fn()
    if r < 0:
        raise OSError(-r, os.strerror(-r))
    return "i386 unshare returned %d" % r


@attempt("unshare-tool")
def _(t):
    return every(lambda: run_tool(["unshare", "-U", "-r", "true"]), lambda: run_tool(["unshare", "-n", "true"]))


@attempt("nsenter-tool")
def _(t):
    return every(lambda: run_tool(["nsenter", "-t", "1", "-m", "-U", "true"]),
                 lambda: run_tool(["nsenter", "-t", str(t["daemon_pid"]), "-n", "true"]))


# io_uring.

@attempt("io-uring-setup")
def _(t):
    params = ctypes.create_string_buffer(120)
    fd = sys_call("io_uring_setup", 8, params)
    os.close(fd)
    return "io_uring_setup gave fd %d" % fd


# Other processes: ptrace, process memory, kill.

PTRACE_TRACEME, PTRACE_ATTACH = 0, 16


@attempt("ptrace-init")
def _(t):
    sys_call("ptrace", PTRACE_ATTACH, 1, 0, 0)
    return "attached to pid 1"


@attempt("ptrace-sibling")
def _(t):
    return every(lambda: sys_call("ptrace", PTRACE_ATTACH, t["victim_agent_pid"], 0, 0) and "attached",
                 lambda: sys_call("ptrace", PTRACE_ATTACH, t["daemon_pid"], 0, 0) and "attached")


@attempt("ptrace-own-child")
def _(t):
    # Even its own child: ptrace is refused outright, not only across users.
    pid = os.fork()
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    try:
        return every(lambda: "attached to own child (%d)" % (sys_call("ptrace", PTRACE_ATTACH, pid, 0, 0) + pid),
                     lambda: in_child(lambda: "traceme returned %d" % sys_call("ptrace", PTRACE_TRACEME, 0, 0, 0)))
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


@attempt("process-vm-readv")
def _(t):
    buf = ctypes.create_string_buffer(64)

    class iovec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
    local = iovec(ctypes.cast(buf, ctypes.c_void_p), 64)
    remote = iovec(0x400000, 64)
    n = sys_call("process_vm_readv", 1, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    return "read %d bytes of pid 1" % n


@attempt("kill-daemon")
def _(t):
    pid = t["daemon_pid"]

    def kill():
        os.kill(pid, signal.SIGKILL)
        return "kill(%d) succeeded" % pid

    def pidfd():
        fd = sys_call("pidfd_open", pid, 0)
        os.close(fd)
        return "pidfd_open(%d) succeeded" % pid
    return every(kill, pidfd, lambda: (os.kill(pid, 0), "signal 0 reached %d" % pid)[1])


@attempt("kill-init")
def _(t):
    return every(lambda: (os.kill(1, signal.SIGKILL), "killed pid 1")[1], lambda: (os.kill(1, signal.SIGTERM), "signalled pid 1")[1])


@attempt("kill-sibling")
def _(t):
    return every(lambda: (os.kill(t["victim_init_pid"], signal.SIGKILL), "killed the sibling's init")[1],
                 lambda: (os.kill(t["victim_agent_pid"], signal.SIGKILL), "killed the sibling")[1],
                 lambda: (os.killpg(t["victim_agent_pid"], signal.SIGKILL), "killed the sibling's group")[1])


# Sockets the filter refuses.

@attempt("raw-socket")
def _(t):
    def mk(family, proto):
        s = socket.socket(family, socket.SOCK_RAW, proto)
        s.close()
        return "opened a raw socket"
    return every(lambda: mk(socket.AF_INET, socket.IPPROTO_ICMP), lambda: mk(socket.AF_INET6, socket.IPPROTO_ICMPV6),
                 lambda: mk(socket.AF_INET, socket.IPPROTO_RAW))


@attempt("packet-socket")
def _(t):
    def mk(family, typ):
        s = socket.socket(family, typ, socket.htons(0x0003))
        s.close()
        return "opened a packet socket"
    return every(lambda: mk(17, socket.SOCK_RAW), lambda: mk(17, socket.SOCK_DGRAM), lambda: mk(socket.AF_INET, 10))  # SOCK_PACKET


@attempt("vsock-socket")
def _(t):
    s = socket.socket(40, socket.SOCK_STREAM)  # AF_VSOCK
    s.close()
    return "opened a vsock socket"


@attempt("netlink-admin-socket")
def _(t):
    def mk(proto):
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, proto)
        s.close()
        return "opened netlink protocol %d" % proto
    return every(lambda: mk(12), lambda: mk(9), lambda: mk(4))  # NETFILTER, AUDIT, SOCK_DIAG


# The network.

@attempt("connect-public-ip")
def _(t):
    return every(lambda: tcp_exchange("1.1.1.1", 443, b"\x16\x03\x01"), lambda: tcp_exchange("8.8.8.8", 53, b"\x00"))


@attempt("connect-public-ipv6")
def _(t):
    return tcp_exchange("2606:4700:4700::1111", 443, b"\x16\x03\x01", family=socket.AF_INET6)


@attempt("connect-host-loopback")
def _(t):
    return tcp_exchange("127.0.0.1", t["host_tcp_port"])


@attempt("connect-host-ip")
def _(t):
    if not t.get("host_ip"):
        raise Blocked("NOHOSTIP", "the host has no non-loopback IPv4 address to try")
    return tcp_exchange(t["host_ip"], t["host_tcp_port"])


@attempt("connect-host-abstract-socket")
def _(t):
    return unix_connect("\0" + t["host_abstract"])


@attempt("connect-sibling-port")
def _(t):
    return tcp_exchange("127.0.0.1", t["victim_port"])


@attempt("connect-sibling-abstract")
def _(t):
    return unix_connect("\0" + t["victim_abstract"])


@attempt("metadata-address")
def _(t):
    req = b"GET /latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n"
    return every(lambda: tcp_exchange("169.254.169.254", 80, req), lambda: tcp_exchange("fd00:ec2::254", 80, req, socket.AF_INET6))


@attempt("dns-unlisted-name")
def _(t):
    def lookup(name):
        infos = socket.getaddrinfo(name, 443, proto=socket.IPPROTO_TCP)
        return "%s resolved to %s" % (name, infos[0][4][0])
    return every(lambda: lookup("example.com"), lambda: lookup(t["unlisted_name"]))


@attempt("dns-tunnel")
def _(t):
    # Data smuggled out in the query name: through the agent's resolver, to
    # a public resolver, and to the host's UDP listener.
    name = "%s.%s" % (os.urandom(16).hex(), t["unlisted_name"])
    _, q = dns_query(name)

    def ask(host, port):
        resp = udp_exchange(host, port, q)
        rcode, addrs = dns_answers(resp)
        if addrs:
            return "%s answered %s for a tunnel query" % (host, addrs)
        raise Blocked("NXDOMAIN" if rcode == 3 else "RCODE%d" % rcode, "%s:%d answered rcode %d, no address" % (host, port, rcode))
    fns = [lambda h=h: ask(h, 53) for h in resolvers()]
    fns += [lambda: ask("8.8.8.8", 53), lambda: ask("127.0.0.1", t["host_udp_port"])]
    if t.get("host_ip"):
        fns.append(lambda: ask(t["host_ip"], t["host_udp_port"]))
    return every(*fns)


@attempt("udp-public")
def _(t):
    def ex(host, port):
        data = udp_exchange(host, port, b"cortex-escape")
        return "got %r from %s:%d" % (data[:40], host, port)
    return every(lambda: ex("1.1.1.1", 443), lambda: ex("8.8.8.8", 123))


@attempt("udp-host")
def _(t):
    def ex(host):
        data = udp_exchange(host, t["host_udp_port"], b"cortex-escape")
        return "got %r from the host" % data[:40]
    fns = [lambda: ex("127.0.0.1")]
    if t.get("host_ip"):
        fns.append(lambda: ex(t["host_ip"]))
    return every(*fns)


@attempt("proxy-connect-unlisted")
def _(t):
    host, port = proxy_addr()

    def connect(target):
        req = ("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode()
        s = socket.create_connection((host, port), timeout=NET_TIMEOUT)
        try:
            s.sendall(req)
            line = s.recv(256).split(b"\r\n", 1)[0]
        finally:
            s.close()
        if b" 200" in line:
            return "proxy said %r to CONNECT %s" % (line, target)
        raise Blocked("HTTP", "proxy said %r" % line)

    def absolute(url, hosthdr):
        req = ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (url, hosthdr)).encode()
        s = socket.create_connection((host, port), timeout=NET_TIMEOUT)
        try:
            s.sendall(req)
            line = s.recv(256).split(b"\r\n", 1)[0]
        finally:
            s.close()
        if b" 200" in line:
            return "proxy fetched %s: %r" % (url, line)
        raise Blocked("HTTP", "proxy said %r" % line)
    hp = "127.0.0.1:%d" % t["host_tcp_port"]
    return every(lambda: connect(t["unlisted_name"] + ":443"), lambda: connect(hp), lambda: connect("169.254.169.254:80"),
                 lambda: absolute("http://%s/" % t["unlisted_name"], t["unlisted_name"]),
                 lambda: absolute("http://%s/" % hp, hp))


def _allowed_addr(t):
    infos = socket.getaddrinfo(t["allowed_name"], t["allowed_https_port"], socket.AF_INET, socket.SOCK_STREAM)
    return infos[0][4][0]


def _tls_request(sock, sni, host_header):
    """TLS over sock with sni, then a GET with host_header; the reply."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(sock, server_hostname=sni)
    s.sendall(("GET /whoami HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host_header).encode())
    data = s.recv(4096)
    if not data:
        raise Blocked("EOF", "TLS with SNI %s: closed without a byte" % sni)
    return data


def _proxy_tunnel(t, target):
    """A CONNECT tunnel through the agent's HTTP proxy, or Blocked."""
    host, port = proxy_addr()
    s = socket.create_connection((host, port), timeout=NET_TIMEOUT)
    s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            break
        head += chunk
    line = head.split(b"\r\n", 1)[0]
    if b" 200" not in line:
        s.close()
        raise Blocked("HTTP", "proxy said %r to CONNECT %s" % (line, target))
    return s


@attempt("tls-sni-mismatch")
def _(t):
    # To the allowed name's address (transparently, and through a CONNECT
    # tunnel for the allowed name), but with another host in the TLS
    # ClientHello; the HTTP Host inside says the allowed name.
    allowed = "%s:%d" % (t["allowed_name"], t["allowed_https_port"])

    def transparent():
        raw = socket.create_connection((_allowed_addr(t), t["allowed_https_port"]), timeout=NET_TIMEOUT)
        try:
            return "SNI %s got %r" % (t["unlisted_name"], _tls_request(raw, t["unlisted_name"], allowed)[:80])
        finally:
            raw.close()

    def tunnel():
        raw = _proxy_tunnel(t, allowed)
        try:
            return "SNI %s in a tunnel got %r" % (t["unlisted_name"], _tls_request(raw, t["unlisted_name"], allowed)[:80])
        finally:
            raw.close()
    return every(transparent, tunnel)


@attempt("http-host-mismatch")
def _(t):
    # Plain HTTP to the allowed name's address, and through the proxy for
    # the allowed name's URL, with another Host.
    port = t["allowed_http_port"]
    req = "GET /whoami HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % t["unlisted_name"]

    seen = ("host=" + t["unlisted_name"]).encode()  # the allowed server echoes the Host it got

    def transparent():
        data = http_exchange(_allowed_addr(t), port, req.encode())
        if seen in data:
            return "the allowed server got Host %s: %r" % (t["unlisted_name"], data[-80:])
        raise Blocked("REWRITTEN", "no request with Host %s arrived: %r" % (t["unlisted_name"], data[:80]))

    def proxied():
        host, pport = proxy_addr()
        r = "GET http://%s:%d/whoami HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (t["allowed_name"], port, t["unlisted_name"])
        data = http_exchange(host, pport, r.encode())
        if seen in data:
            return "the proxy forwarded Host %s: %r" % (t["unlisted_name"], data[-80:])
        # The proxy names the target by the URI and drops the Host header
        # (RFC 9112 3.2.2): the allowed server sees only the allowed name.
        raise Blocked("REWRITTEN", "the proxy sent %r" % data.split(b"\r\n", 1)[0])
    return every(transparent, proxied)


@attempt("https-host-mismatch")
def _(t):
    # SNI says the allowed name, the Host inside the encrypted stream
    # another. The gateway cannot see that Host, so the bytes may only ever
    # reach the allowed server: an escape is any other server answering.
    raw = socket.create_connection((_allowed_addr(t), t["allowed_https_port"]), timeout=NET_TIMEOUT)
    try:
        data = _tls_request(raw, t["allowed_name"], t["unlisted_name"])
    finally:
        raw.close()
    if t["allowed_banner"].encode() in data:
        raise Blocked("ALLOWEDONLY", "only the allowed server answered (%r)" % data.split(b"\r\n", 1)[0])
    return "another server answered: %r" % data[:80]


@attempt("private-resolving-name")
def _(t):
    # A name the agent may use that resolves, on the host, to a loopback or
    # private address: the gateway must not dial it, not transparently and
    # not through the proxy.
    if not t.get("private_name"):
        raise Blocked("NONAME", "the host has no name resolving to a private address")

    def transparent():
        return tcp_exchange(resolve_via_gateway(t["private_name"]), t["host_tcp_port"])

    def proxied():
        s = _proxy_tunnel(t, "%s:%d" % (t["private_name"], t["host_tcp_port"]))
        try:
            s.settimeout(NET_TIMEOUT)
            data = s.recv(256)
        finally:
            s.close()
        if not data:
            raise Blocked("EOF", "tunnel closed without a byte")
        return "got %r through the proxy" % data[:60]
    return every(transparent, proxied)


def _listening_tcp():
    """(address, port) of the TCP listeners in the agent's network
    namespace: the egress gateway's, visible in /proc/net/tcp{,6}."""
    out = []
    for path, addr in (("/proc/net/tcp", "127.0.0.1"), ("/proc/net/tcp6", "::1")):
        try:
            with open(path) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":
                out.append((addr, int(fields[1].rsplit(":", 1)[1], 16)))
    return out


def _reached(t, data):
    """Whether a reply shows a request got somewhere it must not: the
    host's listener, or the allowed server with an unlisted Host."""
    return b"cortex-escape-host" in data or ("host=" + t["unlisted_name"]).encode() in data


@attempt("gateway-listener-direct")
def _(t):
    # Connect straight to the gateway's own listeners (no redirect in
    # between, so the "original destination" is the listener itself) and
    # ask for the host's listener or an unlisted name.
    # Port 53 is the resolver over TCP, tried by the dns-* attempts (an
    # HTTP request there reads as a DNS message that never completes).
    listeners = [(a, p) for a, p in _listening_tcp() if p != 53]
    if not listeners:
        raise Blocked("NOLISTENER", "no listener in the namespace")
    target = "%s:%d" % (t.get("host_ip") or "127.0.0.1", t["host_tcp_port"])
    reqs = [
        "GET http://%s/ HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (target, target),
        "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % t["unlisted_name"],
        "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % target,
    ]
    fns = []
    for addr, port in listeners:
        for req in reqs:
            def one(addr=addr, port=port, req=req):
                data = http_exchange(addr, port, req.encode())
                if _reached(t, data):
                    return "listener [%s]:%d forwarded it: %r" % (addr, port, data[-80:])
                raise Blocked("REFUSED", "listener [%s]:%d answered %r" % (addr, port, data.split(b"\r\n", 1)[0][:60]))
            fns.append(one)
    return every(*fns)


@attempt("synthetic-address-unissued")
def _(t):
    # Addresses from the gateway's synthetic range that were never handed
    # to this agent for a name: nothing may be behind them.
    issued = set()
    for name in (t["allowed_name"], t.get("private_name")):
        if name:
            try:
                issued.add(resolve_via_gateway(name))
            except Exception:  # noqa: BLE001
                pass
    candidates = ["198.19.255.254", "198.18.200.200"]
    for a in issued:
        n = struct.unpack(">I", socket.inet_aton(a))[0] + 97
        candidates.append(socket.inet_ntoa(struct.pack(">I", n)))
    candidates = [c for c in candidates if c not in issued]
    req = "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % t["allowed_name"]

    def one(addr):
        data = http_exchange(addr, t["allowed_http_port"], req.encode())
        if _reached(t, data) or t["allowed_banner"].encode() in data:
            return "%s (never issued) reached a server: %r" % (addr, data[-80:])
        raise Blocked("REFUSED", "%s answered %r" % (addr, data[:60]))
    return every(*[lambda a=a: one(a) for a in candidates])


# Privileges: setuid programs and setuid itself.

@attempt("setuid-root", isolate=True)
def _(t):
    return every(lambda: (os.setuid(0), "setuid(0) succeeded")[1], lambda: (os.setresuid(0, 0, 0), "setresuid(0) succeeded")[1],
                 lambda: (os.setgroups([0]), "setgroups([0]) succeeded")[1])


@attempt("setuid-su")
def _(t):
    return run_tool(["su", "-c", "id -u", "root"], ok=lambda p: p.returncode == 0 and p.stdout.strip() == "0")


@attempt("setuid-mount-binary")
def _(t):
    return run_tool(["mount", "-t", "tmpfs", "none", "/tmp"])


@attempt("setuid-root-helper")
def _(t):
    # A setuid-root copy of id(1), put into the read grant by the test.
    def euid(p):
        return p.stdout.strip() == "0"
    try:
        return run_tool([t["suid_helper"], "-u"], ok=euid)
    except Blocked as e:
        raise Blocked("EUID", "setuid-root helper ran with euid %s" % str(e).split(": ", 1)[-1])


# The kernel's other doors.

@attempt("keyring")
def _(t):
    return every(lambda: "joined keyring %d" % sys_call("keyctl", 1, 0),
                 lambda: "added key %d" % sys_call("add_key", b"user", b"cortex", b"x", 1, ctypes.c_long(-3)))


@attempt("bpf")
def _(t):
    attr = ctypes.create_string_buffer(128)
    return every(lambda: "bpf map %d" % sys_call("bpf", 0, attr, 128), lambda: "bpf prog %d" % sys_call("bpf", 5, attr, 128))


@attempt("perf-event-open")
def _(t):
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("<II", attr, 0, 1, 128)  # PERF_TYPE_SOFTWARE, size
    return "perf fd %d" % sys_call("perf_event_open", attr, 0, -1, -1, 0)


@attempt("userfaultfd")
def _(t):
    return "userfaultfd %d" % sys_call("userfaultfd", 0)


@attempt("kernel-module")
def _(t):
    fd = os.open("/usr/bin/id", os.O_RDONLY)
    try:
        return every(lambda: "finit_module returned %d" % sys_call("finit_module", fd, b"", 0),
                     lambda: "init_module returned %d" % sys_call("init_module", 0, 0, b""))
    finally:
        os.close(fd)


@attempt("open-by-handle")
def _(t):
    # The 'shocker' escape: open a host inode by handle.
    handle = ctypes.create_string_buffer(8 + 8)
    struct.pack_into("<Ii", handle, 0, 8, 1)
    fd = os.open("/app", os.O_RDONLY)
    try:
        return "opened fd %d by handle" % sys_call("open_by_handle_at", fd, handle, 0)
    finally:
        os.close(fd)


@attempt("tiocsti")
def _(t):
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSTI, b"x")
        return "TIOCSTI pushed input"
    finally:
        os.close(master)
        os.close(slave)


@attempt("reboot", isolate=True)
def _(t):
    # LINUX_REBOOT_CMD_CAD_OFF: harmless even if it were allowed.
    sys_call("reboot", 0xfee1dead, 672274793, 0, 0)
    return "reboot() succeeded"


# Resources: last, as it fills the pids ceiling for a moment.

@attempt("fork-bomb")
def _(t):
    def nprocs():
        return sum(1 for e in os.listdir("/proc") if e.isdigit())
    baseline = nprocs()
    r, w = os.pipe()
    leader = os.fork()
    if leader == 0:
        os.close(r)
        os.setpgid(0, 0)
        n, err = 0, ""
        try:
            while n < 5000:
                pid = os.fork()
                if pid == 0:
                    time.sleep(60)
                    os._exit(0)
                n += 1
            err = "none"
        except OSError as e:
            err = errno.errorcode.get(e.errno, str(e.errno))
        os.write(w, json.dumps({"forks": n, "error": err}).encode())
        os.killpg(0, signal.SIGKILL)
        os._exit(0)
    os.close(w)
    ready, _, _ = select.select([r], [], [], 30)
    data = os.read(r, 4096) if ready else b""
    os.close(r)
    try:
        os.killpg(leader, signal.SIGKILL)
    except OSError:
        pass
    os.waitpid(leader, 0)
    # The bomb's children are reaped by the sandbox init; wait until they
    # are gone, so the ceiling has room again for what comes next.
    deadline = time.monotonic() + 30
    while nprocs() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    if not data:
        raise TimeoutError("the bomb did not report")
    res = json.loads(data)
    if res["error"] == "none":
        return "forked %d processes without hitting a ceiling" % res["forks"]
    raise Blocked(res["error"], "the pids ceiling stopped the bomb after %d forks" % res["forks"])


# --- running -----------------------------------------------------------------

def load_targets():
    with open(TARGETS) as f:
        return json.load(f)


def _alarm(signum, frame):
    raise TimeoutError("attempt took longer than its time limit")


def run(via, names=None, out=sys.stdout):
    t = load_targets()
    signal.signal(signal.SIGALRM, _alarm)
    n = 0
    for name, fn, isolate in ATTEMPTS:
        if names and name not in names:
            continue
        t0 = time.monotonic()
        rec = {"msg": "attempt", "attempt": name, "via": via, "pid": os.getpid(), "uid": os.getuid()}
        signal.alarm(60)
        try:
            got = in_child(lambda: fn(t)) if isolate else fn(t)
            rec.update(escaped=True, error="", detail=str(got)[:500])
        except Exception as e:  # noqa: BLE001
            code, detail = describe(e)
            rec.update(escaped=False, error=code, detail=detail[:500])
        finally:
            signal.alarm(0)
        rec["ms"] = int((time.monotonic() - t0) * 1000)
        out.write(json.dumps(rec) + "\n")
        out.flush()
        n += 1
    out.write(json.dumps({"msg": "attempts-done", "via": via, "attempts": n}) + "\n")
    out.flush()
    return n


def main(argv=None):
    if os.getuid() == 0 or "CORTEX_AGENT" not in os.environ:
        # Outside a sandbox these attempts would act on the real host.
        sys.exit("attempts.py runs only inside a Cortex agent sandbox")
    argv = sys.argv[1:] if argv is None else argv
    via, names = "direct", []
    i = 0
    while i < len(argv):
        if argv[i] == "--via":
            via = argv[i + 1]
            i += 2
        else:
            names.append(argv[i])
            i += 1
    run(via, names)


if __name__ == "__main__":
    main()
