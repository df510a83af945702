import json

from cortex.bus import subscribe


def main():
    got = 0
    for message in subscribe("ident"):
        print("msg", json.dumps(message, sort_keys=True), "from=" + message.sender, flush=True)
        got += 1
        if got == 3:
            break
