import json
import threading

from cortex.bus import subscribe


def drain(sub):
    # Everything until the operator's marker, which the test publishes to
    # this project after scope-a's messages were all delivered there.
    for message in sub:
        print("saw", sub.channel, json.dumps(message, sort_keys=True), "from=" + message.sender, flush=True)
        if message.get("marker"):
            break


def main():
    subs = [subscribe("shared"), subscribe("stored")]  # subscribed on return
    print("ready", flush=True)
    threads = [threading.Thread(target=drain, args=(s,)) for s in subs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("spy done", flush=True)
