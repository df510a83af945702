from cortex.bus import subscribe


def main():
    for ch in ("shared", "stored"):
        got = 0
        for message in subscribe(ch):
            print("got", ch, message["i"], "from=" + message.sender, flush=True)
            got += 1
            if got == 6:
                break
    print("done", flush=True)
