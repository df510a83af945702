# Agent B — subscribe and react
from cortex.bus import subscribe
for message in subscribe("analysis-results"):
    print(message["score"])
