import json

from cortex.bus import subscribe


def main():
    received = 0
    for message in subscribe("n2p"):
        print("msg", json.dumps(message, sort_keys=True), "from=" + message.sender, flush=True)
        received += 1
        if received == 3:
            break
