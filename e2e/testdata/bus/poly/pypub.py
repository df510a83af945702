from cortex.bus import publish


def main():
    for i in range(3):
        msg_id = publish("p2n", {"lang": "python", "i": i, "text": "h\u00e9llo \u2713 \"q\"", "nested": {"list": [1, 2.5, None, True], "empty": {}}})
        print("published", i, msg_id)
