import json
import os
import socket

from cortex.bus import BusError, publish


def payload(size):
    """A payload whose JSON encoding is exactly size bytes."""
    return {"x": "a" * (size - len('{"x":""}'))}


def raw(max_payload):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(os.environ["CORTEX_BUS"])
    f = s.makefile("rb")
    json.loads(f.readline())
    # One byte over the limit, then far over the line limit: both must be
    # answered with the request's id, and the connection must stay usable.
    for rid, size in (("over-by-one", max_payload + 1), ("over-line", max_payload + 64 * 1024)):
        head = '{"op":"publish","id":"%s","channel":"big","payload":' % rid
        s.sendall(head.encode() + json.dumps(payload(size), separators=(",", ":")).encode() + b"}\n")
        r = json.loads(f.readline())
        print("raw", rid, "->", r.get("op"), r.get("id"), r.get("code"), r.get("error"), flush=True)
    s.sendall(b'{"op":"ping","id":"after"}\n')
    r = json.loads(f.readline())
    print("raw ping after ->", r.get("op"), r.get("id"), flush=True)
    s.close()


def main():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.environ["CORTEX_BUS"])
    max_payload = json.loads(s.makefile("rb").readline())["max_payload"]
    s.close()
    print("max_payload", max_payload, flush=True)
    publish("big", payload(max_payload))
    print("at limit -> ok", flush=True)
    try:
        publish("big", payload(max_payload + 1))
        print("over limit -> ALLOWED", flush=True)
    except BusError as e:
        print("over limit -> refused", type(e).__name__, e.code, str(e), flush=True)
    raw(max_payload)
    publish("big", {"done": "bigpy"})
