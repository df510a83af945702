"""The worker agent: cortex runs main() in its sandbox."""
import os

from cortex import log


def main():
    log.info("hello", agent=os.environ["CORTEX_AGENT"], project=os.environ["CORTEX_PROJECT"])
    print("Edit agents/worker.py, then: cortex run .")
