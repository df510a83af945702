import json
import os
import platform


def main():
    print(f"hello from {os.environ['CORTEX_AGENT']} in project {os.environ['CORTEX_PROJECT']}")
    print(json.dumps({"level": "info", "msg": "structured hello", "python": platform.python_version(), "pid": os.getpid()}))
