import json
import threading
import time

from cortex.bus import subscribe


def watch(channel):
    for message in subscribe(channel):
        print("LEAK", channel, json.dumps(message, sort_keys=True), "from=" + message.sender, flush=True)


def main():
    # Durable channels: anything ever stored on them would arrive.
    for ch in ("secret", "jobs.a.b"):
        threading.Thread(target=watch, args=(ch,), daemon=True).start()
    done = set()
    for message in subscribe("allowed"):
        done.add(message.sender)
        if done == {"limited", "limitedjs"}:
            break
    wildcard = next(iter(subscribe("jobs.a")))
    print("jobs.a", json.dumps(wildcard, sort_keys=True), "from=" + wildcard.sender, flush=True)
    time.sleep(1)  # time for a stored leak to show
    print("watcher done", flush=True)
