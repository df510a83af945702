from cortex.bus import subscribe


def main():
    for m in subscribe("pings"):
        print("ping", m["k"], flush=True)
