from cortex.bus import subscribe


def main():
    done = set()
    for message in subscribe("big"):
        if "done" in message:
            done.add(message["done"])
            print("done from", message.sender, flush=True)
        else:
            print("stored", len(message.get("x", "")) + len('{"x":""}'), "bytes from", message.sender, flush=True)
        if done == {"bigpy", "bigjs"}:
            break
