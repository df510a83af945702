from cortex.bus import publish, subscribe
publish(channel="analysis-results", payload={"status": "done", "score": 0.94})
for message in subscribe("analysis-results"):
    print(message["score"])
