import os

from cortex.bus import subscribe

N = int(os.environ.get("N", "3000"))


def main():
    sub = subscribe("ticks")
    print("ready", flush=True)
    seen = set()
    for message in sub:
        seen.add(message["n"])
        if len(seen) % 500 == 0:
            print("fast progress", len(seen), flush=True)
        if message["n"] == N - 1:
            break
    print("fast received", len(seen), "of", N, flush=True)
