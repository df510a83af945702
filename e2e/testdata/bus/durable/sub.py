import os
import threading
import time

from cortex.bus import subscribe


def stop_when_told():
    while not os.path.exists("ctl/stop"):
        time.sleep(0.05)
    print("stopping", flush=True)
    os._exit(0)


def main():
    run = int(os.environ["CORTEX_RUN"])
    threading.Thread(target=stop_when_told, daemon=True).start()
    if run > 0:
        # Restarted after the crash: stay off the bus until the test has
        # published the second batch.
        print("down: waiting for ctl/resume", flush=True)
        while not os.path.exists("ctl/resume"):
            time.sleep(0.02)
    seen = set()
    for m in subscribe("jobs"):
        print("got", m["n"], m.id, m.seq, m.redelivered, flush=True)
        seen.add(m["n"])
        if run == 0 and len(seen) == 100:
            # Crash before the loop acknowledges this message.
            print("crashing", flush=True)
            os._exit(3)
