import os
import time

from cortex.bus import publish

BATCHES = [("batch1", range(0, 150)), ("batch2", range(150, 350)), ("batch3", range(350, 500))]


def note(what, n):
    """Record progress in out/ (the test reads it while the daemon, and so
    this agent's log, is down)."""
    with open("out/" + what + ".tmp", "w") as f:
        f.write(str(n))
    os.replace("out/" + what + ".tmp", "out/" + what)


def main():
    for name, numbers in BATCHES:
        while not os.path.exists("ctl/" + name):
            time.sleep(0.02)
        for n in numbers:
            if name == "batch3":
                note("calling", n)
            publish("jobs", {"n": n})
            if name == "batch3":
                # Paced, so the daemon restart falls in the middle.
                note("returned", n)
                print("published", n, flush=True)
                time.sleep(0.02)
        print(name, "done", flush=True)
