# Agent A — publish a result
from cortex.bus import publish
publish(channel="analysis-results", payload={"status": "done", "score": 0.94})
