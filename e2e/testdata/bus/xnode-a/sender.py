import time

from cortex.bus import publish


def main():
    seq = 0
    while True:
        seq += 1
        publish("news", {"seq": seq})
        print("sent", seq, flush=True)
        time.sleep(0.1)
