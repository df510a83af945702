import os
import time

from cortex.bus import publish

N = int(os.environ.get("N", "3000"))


def main():
    while not os.path.exists("ctl/go"):  # the test says when both subscribe
        time.sleep(0.02)
    pad = "x" * 1024
    for n in range(N):
        publish("ticks", {"n": n, "pad": pad})
    print("published", N, flush=True)
