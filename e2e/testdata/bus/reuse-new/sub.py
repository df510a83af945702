import json

from cortex.bus import subscribe


def main():
    for m in subscribe("jobs"):
        print("msg", json.dumps(m, sort_keys=True), "from=" + m.sender, flush=True)
        if m.get("marker"):
            break
