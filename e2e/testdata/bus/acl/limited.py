from cortex.bus import BusError, publish, subscribe


def attempt(what, fn):
    try:
        fn()
        print(what, "-> ALLOWED", flush=True)
    except BusError as e:
        print(what, "-> refused", type(e).__name__, e.code, str(e), flush=True)


def main():
    attempt("publish secret", lambda: publish("secret", {"leak": "py"}))
    attempt("publish jobs.a.b", lambda: publish("jobs.a.b", {"leak": "py-deep"}))
    attempt("subscribe secret", lambda: subscribe("secret"))
    attempt("subscribe jobs.a", lambda: subscribe("jobs.a"))
    attempt("publish jobs.a", lambda: publish("jobs.a", {"ok": "py-wildcard"}))
    publish("allowed", {"by": "limited", "done": True})
