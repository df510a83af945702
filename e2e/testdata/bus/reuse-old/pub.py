from cortex.bus import publish


def main():
    publish("jobs", {"from_removed_project": "secret"})
    print("stored", flush=True)
