import os
import time

from cortex.bus import publish


def main():
    publish("ident", {"by": "honest"})
    print("honest published", flush=True)
    # Stay up (so its socket exists) until the test is done with it.
    deadline = time.monotonic() + 120
    while not os.path.exists("ctl/stop") and time.monotonic() < deadline:
        time.sleep(0.05)
