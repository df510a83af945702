import json
import os
import socket

from cortex.bus import publish


def raw_publish(channel, payload):
    """Publish with protocol fields claiming another project and agent."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(os.environ["CORTEX_BUS"])
    f = s.makefile("rb")
    hello = json.loads(f.readline())
    req = {"op": "publish", "id": "1", "channel": channel, "project": "scope-b", "from": "spy", "agent": "spy", "payload": payload}
    s.sendall(json.dumps(req).encode() + b"\n")
    print("raw", channel, "hello project=" + hello["project"], "reply=" + json.loads(f.readline())["op"], flush=True)
    s.close()


def main():
    for ch in ("shared", "stored"):
        for i in range(5):
            publish(ch, {"project": "scope-a", "i": i})
        raw_publish(ch, {"project": "scope-a", "i": "claims-scope-b"})
    print("published", flush=True)
