import time

from cortex.bus import subscribe


def main():
    sub = subscribe("ticks")
    print("ready", flush=True)
    got = 0
    for message in sub:
        time.sleep(0.05)  # a slow consumer
        got += 1
        if got % 10 == 0:
            print("slow received", got, "last", message["n"], flush=True)
