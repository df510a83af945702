# The seed snippet's publishing lines, verbatim, at import time.
from cortex.bus import publish, subscribe
publish(channel="analysis-results", payload={"status": "done", "score": 0.94})


def main():
    # Two more, so the subscriber's count and order can be checked.
    publish(channel="analysis-results", payload={"status": "done", "score": 0.5})
    publish(channel="analysis-results", payload={"status": "complete", "score": 0.75})
