"""The attacker agent of the escape suite.

It waits for targets.json (written by the test into its read grant), runs
every attempt in attempts.py three ways -- in the agent process itself,
from a shell (sh -c) and from python -c -- then checks that ordinary work
still works (the write grant, child processes, imports, HTTP and HTTPS to
an allowed name from Python urllib and Node fetch), prints
{"msg": "escape-suite-finished"} and keeps running, so the test can see it
is still alive afterwards.
"""
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.request

import attempts


def emit(**rec):
    print(json.dumps(rec), flush=True)


def check(name, fn):
    try:
        detail = fn()
        emit(msg="check", check=name, ok=True, detail=str(detail)[:300])
    except Exception as e:  # noqa: BLE001
        emit(msg="check", check=name, ok=False, detail="%s: %s" % (type(e).__name__, e))


def wait_targets(timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(attempts.TARGETS):
            return
        time.sleep(0.05)
    raise SystemExit("no %s after %ds" % (attempts.TARGETS, timeout))


def write_round_trip():
    with open("/app/rw/from-host.txt") as f:
        got = f.read()
    with open("/app/rw/from-agent.txt", "w") as f:
        f.write(got[::-1])
    st = os.stat("/app/rw/from-agent.txt")
    if st.st_uid != os.getuid():
        raise RuntimeError("file written in the grant is owned by %d inside, not the agent (%d)" % (st.st_uid, os.getuid()))
    return "read %d bytes, wrote them back reversed" % len(got)


def children():
    out = subprocess.run(["sh", "-c", "echo child-$((6*7)) && id -u"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0 or not out.stdout.startswith("child-42"):
        raise RuntimeError("sh -c: %r %r" % (out.stdout, out.stderr))
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 7:
        raise RuntimeError("fork: child status %r" % status)
    res = []
    th = threading.Thread(target=lambda: res.append(sum(range(1000))))
    th.start()
    th.join()
    if res != [499500]:
        raise RuntimeError("thread result %r" % res)
    return "sh -c, fork and threads work (uid %s)" % out.stdout.split()[-1]


def imports():
    code = "import json, urllib.request, ssl, sqlite3, subprocess, multiprocessing; print('imports-ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    if out.returncode != 0 or "imports-ok" not in out.stdout:
        raise RuntimeError("python -c: %r %r" % (out.stdout, out.stderr[-300:]))
    return "python -c imports work"


def tmp_works():
    with open("/tmp/scratch", "w") as f:
        f.write("x" * 4096)
    os.remove("/tmp/scratch")
    return "/tmp is writable"


def fetch_python(url, proxy=True):
    """urllib, through the HTTP proxy the agent's environment names, or
    with proxy=False straight out (the gateway's transparent path)."""
    t = attempts.load_targets()
    handlers = [urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=t["ca_file"]))]
    if not proxy:
        handlers.append(urllib.request.ProxyHandler({}))
    with urllib.request.build_opener(*handlers).open(url, timeout=20) as r:
        body = r.read().decode()
    if t["allowed_banner"] not in body:
        raise RuntimeError("unexpected body %r" % body[:200])
    return "%s: %s" % (url, body.strip())


def fetch_node(url):
    t = attempts.load_targets()
    env = dict(os.environ, NODE_EXTRA_CA_CERTS=t["ca_file"])
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run(["node", os.path.join(here, "fetch.js"), url], env=env, capture_output=True, text=True, timeout=60)
    res = json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {"error": out.stderr[-300:]}
    if res.get("status") != 200 or t["allowed_banner"] not in res.get("body", ""):
        raise RuntimeError("node fetch %s: %r" % (url, res))
    return "%s: %s" % (url, res["body"].strip())


def main():
    wait_targets()
    attempts.run("direct")
    here = os.path.dirname(os.path.abspath(attempts.__file__))
    # The same attempts from a shell, and from python -c: children inherit
    # every wall.
    subprocess.run(["/bin/sh", "-c", '"$0" "$1" --via sh', sys.executable, os.path.join(here, "attempts.py")], timeout=600)
    subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, %r); import attempts; attempts.main(['--via', 'python-c'])" % here],
                   timeout=600)
    check("write-round-trip", write_round_trip)
    check("child-processes", children)
    check("python-c-imports", imports)
    check("tmp-writable", tmp_works)
    t = attempts.load_targets()
    http = "http://%s:%d/hello" % (t["allowed_name"], t["allowed_http_port"])
    https = "https://%s:%d/hello" % (t["allowed_name"], t["allowed_https_port"])
    check("python-urllib-http-proxy", lambda: fetch_python(http))
    check("python-urllib-https-proxy", lambda: fetch_python(https))
    check("python-urllib-http-transparent", lambda: fetch_python(http, proxy=False))
    check("python-urllib-https-transparent", lambda: fetch_python(https, proxy=False))
    check("node-fetch-http", lambda: fetch_node(http))
    check("node-fetch-https", lambda: fetch_node(https))
    emit(msg="escape-suite-finished")
    while True:
        time.sleep(3600)
