import errno
import json
import os
import socket
import stat

from cortex.bus import publish


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    f = s.makefile("rb")
    return s, f, json.loads(f.readline())


def spoof():
    # Every field a request could use to claim someone else.
    s, f, hello = connect(os.environ["CORTEX_BUS"])
    print("own hello", hello["project"], hello["agent"], flush=True)
    req = {"op": "publish", "id": "1", "channel": "ident", "from": "honest", "agent": "honest", "sender": "honest",
           "identity": {"project": "ident", "agent": "honest"}, "payload": {"by": "liar-raw"}}
    s.sendall(json.dumps(req).encode() + b"\n")
    print("raw spoof reply", json.loads(f.readline())["op"], flush=True)
    s.close()
    publish("ident", {"by": "liar-sdk", "from": "honest", "sender": "honest"})
    print("sdk publish done", flush=True)


def attempt(path):
    try:
        s, f, hello = connect(path)
    except OSError as e:
        return "refused " + (errno.errorcode.get(e.errno, "") or type(e).__name__)
    except ValueError:
        return "refused no-hello"
    s.close()
    if hello.get("op") == "hello" and hello.get("agent") == "liar" and hello.get("project") == "ident":
        return "own socket"
    return "REACHED " + json.dumps(hello)


def tamper():
    # The socket directory is bound read-only: the socket cannot be
    # replaced by one the agent listens on itself.
    for what, fn in (
        ("unlink own socket", lambda: os.unlink("/run/cortex/bus.sock")),
        ("rename own socket", lambda: os.rename("/run/cortex/bus.sock", "/run/cortex/old.sock")),
        ("create file", lambda: open("/run/cortex/evil", "w").close()),
        ("chmod own socket", lambda: os.chmod("/run/cortex/bus.sock", 0o666)),
    ):
        try:
            fn()
            print("tamper", what, "-> DONE", flush=True)
        except OSError as e:
            print("tamper", what, "-> refused", errno.errorcode.get(e.errno, e.errno), flush=True)


def sockets_visible():
    found = []
    for top in os.listdir("/"):
        if top in ("proc", "sys", "dev", "usr"):
            continue
        for root, dirs, files in os.walk("/" + top, onerror=lambda e: None):
            for name in dirs + files:
                p = os.path.join(root, name)
                try:
                    if stat.S_ISSOCK(os.lstat(p).st_mode):
                        found.append(p)
                except OSError:
                    pass
    return sorted(found)


def main():
    spoof()
    tamper()
    print("run/cortex holds", sorted(os.listdir("/run/cortex")), flush=True)
    print("sockets visible", sockets_visible(), flush=True)
    targets = [
        os.environ["HONEST_HOST_SOCK"],
        os.environ["LISTENER_HOST_SOCK"],
        os.environ["DAEMON_HOST_SOCK"],
        "/run/cortex/../honest/bus/bus.sock",
        "/run/cortex/../../honest/bus/bus.sock",
        "/run/cortex/agents/ident/honest/bus/bus.sock",
        "/run/cortex/honest/bus.sock",
        "/run/cortex/honest.sock",
        "/run/cortex/cortexd.sock",
        "/run/cortexd.sock",
        "/var/run/cortex/bus.sock",
        "/var/lib/cortex/bus.sock",
        "/tmp/bus.sock",
    ]
    # Every process it can see: their roots lead back into its own sandbox.
    for pid in sorted(p for p in os.listdir("/proc") if p.isdigit()):
        targets.append("/proc/%s/root/run/cortex/bus.sock" % pid)
    for t in targets:
        print("attempt", t, "->", attempt(t), flush=True)
    print("attempts", len(targets), flush=True)
