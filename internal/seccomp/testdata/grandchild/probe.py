# Run by the seccomp kernel tests as a grandchild of the process that loaded
# the filter. Prints one JSON object: each check's outcome, "ok" or an errno
# name, and the Seccomp mode this process reports.
import ctypes
import errno
import json
import os
import subprocess
import threading

CLONE_NEWUSER = 0x10000000


def errname(e):
    return errno.errorcode.get(e, str(e))


out = {}

libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(CLONE_NEWUSER) == 0:
    out["unshare"] = "ok"
else:
    out["unshare"] = errname(ctypes.get_errno())

# pthread_create in glibc 2.34+ tries clone3 first and falls back to clone
# on ENOSYS.
seen = []
t = threading.Thread(target=seen.append, args=(1,))
t.start()
t.join()
out["thread"] = "ok" if seen == [1] else "thread did not run"

pid = os.fork()
if pid == 0:
    os._exit(7)
_, status = os.waitpid(pid, 0)
out["fork"] = "ok" if os.waitstatus_to_exitcode(status) == 7 else "status %d" % status

p = subprocess.run(["/bin/sh", "-c", "echo ok"], capture_output=True, text=True)
out["subprocess"] = "ok" if p.stdout == "ok\n" else repr(p.stdout)

with open("/proc/self/status") as f:
    for line in f:
        if line.startswith("Seccomp:"):
            out["seccomp_mode"] = line.split()[1]

print(json.dumps(out))
