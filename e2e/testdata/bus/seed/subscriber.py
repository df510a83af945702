# The seed snippet's loop, verbatim, plus a stop after the three messages
# the publisher sends (so the run ends) and a line of metadata per message.
from cortex.bus import publish, subscribe

EXPECTED = 3


def main():
    received = 0
    for message in subscribe("analysis-results"):
        print(message["score"])
        print("meta", message["status"], message.sender, message.durable, flush=True)
        received += 1
        if received == EXPECTED:
            break
