"""Test agent driving the Python SDK. Every line it prints is JSON or a
fixed word, so the Go test can parse it.

  sub CHANNEL [--sleep S] [--async]      print each message as JSON
  pub CHANNEL COUNT [--start K] [--async] [--size B] [--sleep S]
  try-pub CHANNEL [--size B]             print ok / error CLASS CODE
  try-sub CHANNEL                        print ok / error CLASS CODE
  bench-sub CHANNEL COUNT                print latency figures when COUNT arrived
  bench-pub CHANNEL COUNT [--rate R]     publish COUNT messages stamped with time.time_ns()
"""

import argparse
import asyncio
import json
import sys
import time

import cortex.bus as bus


def emit(obj):
    sys.stdout.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")
    sys.stdout.flush()


def line_of(m):
    return {"payload": dict(m), "sender": m.sender, "id": m.id, "seq": m.seq,
            "redelivered": m.redelivered, "durable": m.durable, "channel": m.channel}


def sub(args):
    s = bus.subscribe(args.channel)
    emit("READY")
    for m in s:
        emit(line_of(m))
        if args.sleep:
            time.sleep(args.sleep)


async def sub_async(args):
    async for m in bus.subscribe_async(args.channel):
        emit(line_of(m))
        if args.sleep:
            await asyncio.sleep(args.sleep)


def payload(i, size):
    p = {"n": i}
    if size:
        p["pad"] = "x" * size
    return p


def pub(args):
    for i in range(args.start, args.start + args.count):
        bus.publish(args.channel, payload(i, args.size))
        if args.sleep:
            time.sleep(args.sleep)
    emit("DONE")


async def pub_async(args):
    # concurrent publishes share one pipelined connection
    await asyncio.gather(*(bus.publish_async(args.channel, payload(i, args.size))
                           for i in range(args.start, args.start + args.count)))
    emit("DONE")


def try_pub(args):
    try:
        mid = bus.publish(args.channel, payload(0, args.size), timeout=10)
        emit("ok " + mid)
    except bus.BusError as e:
        emit("error %s %s %s" % (type(e).__name__, e.code, e))


def try_sub(args):
    try:
        bus.subscribe(args.channel)
        emit("ok")
    except bus.BusError as e:
        emit("error %s %s %s" % (type(e).__name__, e.code, e))


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def bench_sub(args):
    lats = []
    first = last = None
    s = bus.subscribe(args.channel)
    emit("READY")
    for m in s:
        now = time.time_ns()
        if m.get("end"):
            break
        if first is None:
            first = now
        last = now
        lats.append(now - m["t"])
        if len(lats) >= args.count:
            break
    if not lats:
        emit({"received": 0})
        return
    emit({"received": len(lats), "p50_us": percentile(lats, 0.50) / 1e3, "p99_us": percentile(lats, 0.99) / 1e3,
          "span_s": (last - first) / 1e9})


def bench_pub(args):
    interval = 1.0 / args.rate if args.rate else 0
    t0 = time.perf_counter()
    nxt = t0
    for i in range(args.count):
        if interval:
            nxt += interval
            d = nxt - time.perf_counter()
            if d > 0:
                time.sleep(d)
        bus.publish(args.channel, {"n": i, "t": time.time_ns()})
    elapsed = time.perf_counter() - t0
    bus.publish(args.channel, {"end": True})
    emit({"sent": args.count, "elapsed_s": elapsed})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd")
    ap.add_argument("channel")
    ap.add_argument("count", type=int, nargs="?", default=1)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--sleep", type=float, default=0)
    ap.add_argument("--size", type=int, default=0)
    ap.add_argument("--rate", type=float, default=0)
    ap.add_argument("--async", dest="use_async", action="store_true")
    args = ap.parse_args()
    if args.cmd == "sub":
        if args.use_async:
            asyncio.run(sub_async(args))
        else:
            sub(args)
    elif args.cmd == "pub":
        if args.use_async:
            asyncio.run(pub_async(args))
        else:
            pub(args)
    elif args.cmd == "try-pub":
        try_pub(args)
    elif args.cmd == "try-sub":
        try_sub(args)
    elif args.cmd == "bench-sub":
        bench_sub(args)
    elif args.cmd == "bench-pub":
        bench_pub(args)
    else:
        sys.exit("unknown command " + args.cmd)


if __name__ == "__main__":
    main()
