from cortex.bus import subscribe


def main():
    for m in subscribe("news"):
        print("got", m["seq"], "from=" + m.sender, "node=" + m.node, flush=True)
