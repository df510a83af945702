"use strict";
// Test agent driving the Node SDK; mirrors testdata/py/agent.py.
//   sub CHANNEL [--sleep S]     print each message as JSON
//   pub CHANNEL COUNT [--start K] [--size B] [--parallel]
//   try-pub CHANNEL [--size B]  print ok / error CLASS CODE MESSAGE
//   try-sub CHANNEL
//   bench-sub CHANNEL COUNT / bench-pub CHANNEL COUNT [--rate R]
const { publish, subscribe, metadata, BusError } = require("cortex/bus");

const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf("--" + name);
  return i === -1 ? def : argv[i + 1];
};
const flag = (name) => argv.includes("--" + name);
const [cmd, channel, countArg] = argv;
const count = parseInt(countArg || "1", 10);
const emit = (o) => process.stdout.write((typeof o === "string" ? o : JSON.stringify(o)) + "\n");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const payload = (i, size) => (size ? { n: i, pad: "x".repeat(size) } : { n: i });
// Wall clock in ns with sub-microsecond resolution, comparable across processes.
const { performance } = require("perf_hooks");
const nowNs = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));

async function main() {
  switch (cmd) {
    case "sub": {
      const s = subscribe(channel);
      await s.ready;
      emit("READY");
      const pause = parseFloat(opt("sleep", "0")) * 1000;
      for await (const m of s) {
        const md = metadata(m);
        emit({ payload: m, sender: md.sender, id: md.id, seq: md.seq, redelivered: md.redelivered, durable: md.durable, channel: md.channel });
        if (pause) await sleep(pause);
      }
      break;
    }
    case "pub": {
      const start = parseInt(opt("start", "0"), 10);
      const size = parseInt(opt("size", "0"), 10);
      if (flag("parallel")) {
        const all = [];
        for (let i = start; i < start + count; i++) all.push(publish(channel, payload(i, size)));
        await Promise.all(all);
      } else {
        for (let i = start; i < start + count; i++) await publish({ channel, payload: payload(i, size) });
      }
      emit("DONE");
      break;
    }
    case "try-pub":
      try {
        emit("ok " + (await publish(channel, payload(0, parseInt(opt("size", "0"), 10)), { timeoutMs: 10000 })));
      } catch (e) {
        if (!(e instanceof BusError)) throw e;
        emit(`error ${e.name} ${e.code} ${e.message}`);
      }
      break;
    case "try-sub":
      try {
        const s = subscribe(channel);
        await s.ready;
        emit("ok");
        s.close();
      } catch (e) {
        if (!(e instanceof BusError)) throw e;
        emit(`error ${e.name} ${e.code} ${e.message}`);
      }
      break;
    case "bench-sub": {
      const s = subscribe(channel);
      await s.ready;
      emit("READY");
      const lats = [];
      let first = null;
      let last = null;
      for await (const m of s) {
        const now = nowNs();
        if (m.end) break;
        if (first === null) first = now;
        last = now;
        lats.push(Number(now - BigInt(m.t)));
        if (lats.length >= count) break;
      }
      if (!lats.length) {
        emit({ received: 0 });
        break;
      }
      lats.sort((a, b) => a - b);
      const pct = (p) => lats[Math.min(lats.length - 1, Math.floor(lats.length * p))] / 1e3;
      emit({ received: lats.length, p50_us: pct(0.5), p99_us: pct(0.99), span_s: Number(last - first) / 1e9 });
      break;
    }
    case "bench-pub": {
      const rate = parseFloat(opt("rate", "0"));
      const t0 = Date.now();
      for (let i = 0; i < count; i++) {
        if (rate) {
          const due = t0 + (i * 1000) / rate;
          const d = due - Date.now();
          if (d > 0) await sleep(d);
        }
        await publish(channel, { n: i, t: nowNs().toString() });
      }
      const elapsed = (Date.now() - t0) / 1000;
      await publish(channel, { end: true });
      emit({ sent: count, elapsed_s: elapsed });
      break;
    }
    default:
      throw new Error("unknown command " + cmd);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
