"""Works through the tasks until the producer says it is done."""
from cortex import log
from cortex.bus import subscribe


def main():
    for message in subscribe("tasks"):
        if message.get("done"):
            break
        log.info("working", n=message["n"], task=message["task"])
    print("all tasks done")
