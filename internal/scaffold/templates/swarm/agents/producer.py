"""Publishes the tasks, then a last message saying it is done."""
from cortex import log
from cortex.bus import publish


def main():
    for n, task in enumerate(["fetch", "summarise", "report"], 1):
        publish(channel="tasks", payload={"n": n, "task": task})
        log.info("published", n=n, task=task)
    publish(channel="tasks", payload={"done": True})
