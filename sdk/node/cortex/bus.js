"use strict";
/**
 * Cortex message bus client for agents (Node 18/20, no dependencies).
 *
 *   const { publish, subscribe } = require("cortex/bus");
 *   await publish("analysis-results", { status: "done", score: 0.94 });
 *   for await (const message of subscribe("analysis-results")) {
 *     console.log(message.score);
 *   }
 *
 * Channels belong to the agent's project; the daemon knows which agent is on
 * the socket ($CORTEX_BUS, default /run/cortex/bus.sock). The client
 * reconnects and resubscribes by itself when the daemon restarts. Protocol:
 * docs/bus-protocol.md.
 * @module cortex/bus
 */

const net = require("net");
const crypto = require("crypto");

const SOCKET_ENV = "CORTEX_BUS";
const DEFAULT_SOCKET = "/run/cortex/bus.sock";
const TIMEOUT_ENV = "CORTEX_BUS_TIMEOUT";
const DEFAULT_TIMEOUT_MS = 30000;
// Queue depth at which a subscription stops reading its socket (back-pressure
// to the daemon, which then drops for non-durable channels and holds back
// durable ones), and where it resumes.
const HIGH_WATER = 256;
const LOW_WATER = 64;

/** The agent's bus socket: $CORTEX_BUS, else /run/cortex/bus.sock. */
function socketPath() {
  return process.env[SOCKET_ENV] || DEFAULT_SOCKET;
}

function defaultTimeoutMs() {
  const v = parseFloat(process.env[TIMEOUT_ENV] || "");
  return Number.isFinite(v) && v > 0 ? v * 1000 : DEFAULT_TIMEOUT_MS;
}

/**
 * An error reported by the bus. `code` is the protocol's error code
 * (invalid, forbidden, payload_too_large, not_found, unavailable, internal);
 * `hint` says how to fix it when the daemon knows.
 */
class BusError extends Error {
  /** @param {string} message @param {string} [code] @param {string} [hint] */
  constructor(message, code = "internal", hint = "") {
    super(hint ? `${message} (hint: ${hint})` : message);
    this.name = this.constructor.name;
    /** @type {string} */
    this.code = code;
    /** @type {string} */
    this.hint = hint;
  }
}
/** The agent's bus ACL refuses the channel, or the socket is another user's. */
class PermissionDenied extends BusError {}
/** The payload is over the daemon's bus.max_payload. */
class PayloadTooLarge extends BusError {}
/** A bad channel name, a payload that is not a JSON object, ... */
class InvalidRequest extends BusError {}
/** The daemon could not be reached before the timeout. */
class Unavailable extends BusError {}

const BY_CODE = {
  forbidden: PermissionDenied,
  payload_too_large: PayloadTooLarge,
  invalid: InvalidRequest,
  unavailable: Unavailable,
};

function errorFrom(reply) {
  const code = String(reply.code || "internal");
  const Cls = BY_CODE[code] || BusError;
  return new Cls(String(reply.error || code), code, String(reply.hint || ""));
}

const TRANSIENT = new Set(["ENOENT", "ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EAGAIN", "ENOTCONN"]);

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

class Backoff {
  constructor(first = 50, cap = 2000) {
    this.first = first;
    this.cap = cap;
    this.cur = first;
  }
  next() {
    const d = this.cur;
    this.cur = Math.min(this.cur * 2, this.cap);
    return d * (0.75 + Math.random() * 0.5);
  }
  reset() {
    this.cur = this.first;
  }
}

/** One connection: splits the stream into JSON lines. */
class Conn {
  constructor(sock) {
    this.sock = sock;
    this.hello = null;
    this.closed = false;
    this.parts = [];
    this.handler = null;
    this.backlog = [];
    this.onClose = null;
    sock.on("data", (chunk) => this._data(chunk));
    sock.on("close", () => {
      this.closed = true;
      if (this.onClose) this.onClose();
    });
    sock.on("error", () => {}); // "close" follows
  }
  _data(chunk) {
    let start = 0;
    let idx;
    while ((idx = chunk.indexOf(10, start)) !== -1) {
      let line = chunk.subarray(start, idx);
      start = idx + 1;
      if (this.parts.length) {
        this.parts.push(line);
        line = Buffer.concat(this.parts);
        this.parts = [];
      }
      let obj;
      try {
        obj = JSON.parse(line.toString("utf8"));
      } catch (e) {
        continue;
      }
      if (this.handler) this.handler(obj);
      else this.backlog.push(obj);
    }
    if (start < chunk.length) this.parts.push(chunk.subarray(start));
  }
  setHandler(fn) {
    this.handler = fn;
    const backlog = this.backlog;
    this.backlog = [];
    for (const obj of backlog) fn(obj);
  }
  write(s) {
    if (!this.closed) this.sock.write(s);
  }
  close() {
    this.sock.destroy();
  }
}

/** Connect once and read hello. */
function dial(path, timeoutMs) {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ path });
    const conn = new Conn(sock);
    let settled = false;
    const done = (err, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      conn.onClose = null;
      if (err) {
        sock.destroy();
        reject(err);
      } else resolve(value);
    };
    const timer = setTimeout(() => done(Object.assign(new Error("connect timed out"), { code: "ETIMEDOUT" })), timeoutMs);
    sock.once("error", (err) => {
      if (err && err.code === "EACCES") {
        done(new PermissionDenied(`cannot connect to the bus socket ${path}: ${err.message}`, "forbidden"));
      } else done(err);
    });
    conn.onClose = () => done(Object.assign(new Error("bus closed the connection before hello"), { code: "ECONNRESET" }));
    conn.handler = (obj) => {
      conn.handler = null;
      if (obj.op === "error") return done(errorFrom(obj));
      if (obj.op !== "hello") return done(new BusError(`unexpected first line from the bus: ${obj.op}`));
      conn.hello = obj;
      done(null, conn);
    };
  });
}

/**
 * Connect, retrying transient failures until deadline (null: forever).
 * Retrying forever (a subscription), it says so once on stderr, so an
 * agent whose bus is unreachable is never silent about why it waits.
 */
async function connect(path, deadline, backoff) {
  let warned = false;
  for (;;) {
    const remaining = deadline == null ? 10000 : Math.min(10000, deadline - Date.now());
    if (remaining <= 0) throw new Unavailable(`bus socket ${path} is not answering`, "unavailable");
    try {
      const conn = await dial(path, remaining);
      backoff.reset();
      return conn;
    } catch (err) {
      if (err instanceof BusError && err.code !== "unavailable") throw err;
      if (!(err instanceof BusError) && !TRANSIENT.has(err && err.code)) throw err;
      if (deadline == null && !warned) {
        warned = true;
        process.stderr.write(`cortex.bus: cannot reach the bus at ${path} (${err && (err.code || err.message)}); retrying until it answers\n`);
      }
    }
    let d = backoff.next();
    if (deadline != null) d = Math.min(d, Math.max(0, deadline - Date.now()));
    await sleep(d);
  }
}

function checkChannel(channel) {
  if (typeof channel !== "string" || channel === "") throw new TypeError("channel must be a non-empty string");
}

function encodePayload(payload) {
  if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
    throw new TypeError(`payload must be a plain object (a JSON object), not ${Array.isArray(payload) ? "an array" : typeof payload}`);
  }
  return JSON.stringify(payload, (k, v) => (typeof v === "bigint" ? v.toString() : v));
}

function checkSize(data, maxPayload) {
  const n = Buffer.byteLength(data, "utf8");
  if (maxPayload && n > maxPayload) {
    throw new PayloadTooLarge(
      `payload is ${n} bytes, over the bus limit of ${maxPayload}`,
      "payload_too_large",
      "send a reference (a file path or URL) instead of the data",
    );
  }
}

const LOST = Symbol("connection lost");

/** The process's shared publishing connection; requests are pipelined. */
class Publisher {
  constructor(path) {
    this.path = path;
    this.conn = null;
    this.connecting = null;
    this.pending = new Map();
    this.seq = 0;
  }

  _refresh() {
    // Idle, the connection must not keep the process alive.
    if (this.conn && !this.conn.closed) {
      if (this.pending.size) this.conn.sock.ref();
      else this.conn.sock.unref();
    }
  }

  _ensure(deadline, backoff) {
    if (this.conn && !this.conn.closed) return Promise.resolve(this.conn);
    if (!this.connecting) {
      this.connecting = connect(this.path, deadline, backoff).then(
        (conn) => {
          this.connecting = null;
          this.conn = conn;
          conn.setHandler((obj) => {
            const p = this.pending.get(String(obj.id));
            if (p) {
              this.pending.delete(String(obj.id));
              p.resolve(obj);
            }
          });
          conn.onClose = () => {
            if (this.conn === conn) this.conn = null;
            const pending = [...this.pending.values()];
            this.pending.clear();
            for (const p of pending) p.reject(LOST);
          };
          this._refresh();
          return conn;
        },
        (err) => {
          this.connecting = null;
          throw err;
        },
      );
    }
    return this.connecting;
  }

  async publish(channel, payload, timeoutMs) {
    checkChannel(channel);
    const data = encodePayload(payload);
    const msgId = crypto.randomBytes(16).toString("hex");
    const deadline = Date.now() + (timeoutMs == null ? defaultTimeoutMs() : timeoutMs);
    const backoff = new Backoff();
    for (;;) {
      const conn = await this._ensure(deadline, backoff);
      checkSize(data, conn.hello && conn.hello.max_payload);
      const rid = String(++this.seq);
      const line = `{"op":"publish","id":"${rid}","channel":${JSON.stringify(channel)},"msg_id":"${msgId}","payload":${data}}\n`;
      let reply;
      try {
        reply = await new Promise((resolve, reject) => {
          const timer = setTimeout(() => {
            this.pending.delete(rid);
            reject(new Unavailable(`publish to "${channel}" timed out`, "unavailable"));
          }, Math.max(1, deadline - Date.now()));
          this.pending.set(rid, {
            resolve: (v) => (clearTimeout(timer), resolve(v)),
            reject: (e) => (clearTimeout(timer), reject(e)),
          });
          this._refresh();
          conn.write(line);
        });
      } catch (err) {
        if (err !== LOST) throw err;
        if (Date.now() >= deadline) throw new Unavailable(`publish to "${channel}" timed out: connection lost`, "unavailable");
        await sleep(Math.min(backoff.next(), Math.max(0, deadline - Date.now())));
        continue; // same msg_id: the daemon drops duplicates on durable channels
      } finally {
        this._refresh();
      }
      if (reply.op === "ok") return String(reply.msg_id || msgId);
      const err = errorFrom(reply);
      if (err.code === "unavailable" && Date.now() < deadline) {
        await sleep(Math.min(backoff.next(), Math.max(0, deadline - Date.now())));
        continue;
      }
      throw err;
    }
  }

  close() {
    if (this.conn) this.conn.close();
  }
}

let shared = null;

/**
 * Publish `payload` (a plain object) on `channel`; resolves to the message
 * id once the daemon accepted it (on a durable channel: once stored).
 * Also callable as publish({ channel, payload }). Rejects with
 * PermissionDenied (bus.publish ACL), PayloadTooLarge, TypeError, or
 * Unavailable when the daemon is unreachable for `timeoutMs` (default
 * $CORTEX_BUS_TIMEOUT seconds or 30 s); meanwhile it retries with backoff.
 * @param {string | {channel: string, payload: object, timeoutMs?: number}} channel
 * @param {object} [payload]
 * @param {{timeoutMs?: number}} [options]
 * @returns {Promise<string>}
 */
function publish(channel, payload, options = {}) {
  if (channel !== null && typeof channel === "object") {
    ({ channel, payload } = channel);
    options = arguments[0];
  }
  const path = socketPath();
  if (!shared || shared.path !== path) shared = new Publisher(path);
  try {
    return shared.publish(channel, payload, options && options.timeoutMs);
  } catch (err) {
    return Promise.reject(err);
  }
}

/** Close the shared publishing connection (it reopens on next use). */
function close() {
  if (shared) shared.close();
}

/**
 * @typedef {object} Metadata
 * @property {string} channel
 * @property {string} id        message id
 * @property {string} sender    publishing agent ("" for operator publishes)
 * @property {string} node      daemon node id the message entered on
 * @property {string} time      RFC 3339
 * @property {number|null} seq  store sequence (durable channels)
 * @property {boolean} durable
 * @property {boolean} redelivered
 * @property {() => void} ack   acknowledge (durable; no-op otherwise)
 * @property {() => void} nak   return for redelivery (durable; no-op otherwise)
 */

const META = new WeakMap();

/**
 * The metadata of a received message.
 * @param {object} message
 * @returns {Metadata | undefined}
 */
function metadata(message) {
  return META.get(message);
}

/**
 * Async iterator over a channel's messages (see subscribe).
 * @implements {AsyncIterableIterator<object>}
 */
class Subscription {
  constructor(channel, { autoAck = true, path } = {}) {
    checkChannel(channel);
    this.channel = channel;
    this.autoAck = autoAck;
    this.path = path || socketPath();
    this.durable = false;
    this.conn = null;
    this.sub = null;
    this.gen = 0;
    this.queue = [];
    this.waiters = [];
    this.error = null;
    this.closed = false;
    this.last = null;
    this.paused = false;
    this.backoff = new Backoff();
    /** Resolves once subscribed; rejects with e.g. PermissionDenied. */
    this.ready = this._open();
    this.ready.catch(() => {});
  }

  async _open() {
    while (!this.closed) {
      let conn;
      try {
        conn = await connect(this.path, null, this.backoff);
      } catch (err) {
        this._fail(err);
        throw err;
      }
      if (this.closed) {
        conn.close();
        break;
      }
      // Lines after the reply may arrive in the same read, before this
      // function resumes: keep them for the message handler.
      const early = [];
      const reply = await new Promise((resolve) => {
        let answered = false;
        conn.setHandler((obj) => {
          if (!answered && (obj.id === "s" || obj.op === "error")) {
            answered = true;
            resolve(obj);
          } else early.push(obj);
        });
        conn.onClose = () => resolve(null);
        conn.write(JSON.stringify({ op: "subscribe", id: "s", channel: this.channel }) + "\n");
      });
      if (!reply || reply.op !== "ok") {
        conn.close();
        const err = reply ? errorFrom(reply) : null;
        if (err && err.code !== "unavailable") {
          this._fail(err);
          throw err;
        }
        await sleep(this.backoff.next());
        continue;
      }
      const gen = ++this.gen;
      this.conn = conn;
      this.sub = String(reply.sub);
      this.durable = !!reply.durable;
      this.paused = false;
      conn.setHandler((obj) => this._line(obj, conn));
      for (const obj of early) this._line(obj, conn);
      conn.onClose = () => {
        if (this.gen !== gen || this.conn !== conn) return;
        this.conn = null;
        if (!this.closed) {
          this.ready = sleep(this.backoff.next()).then(() => this._open());
          this.ready.catch(() => {});
        }
      };
      return;
    }
  }

  _line(obj, conn) {
    if (obj.op === "message" && String(obj.sub) === this.sub) {
      this.queue.push({ obj, conn });
      if (!this.paused && this.queue.length >= HIGH_WATER) {
        this.paused = true;
        conn.sock.pause();
      }
      this._wake();
    } else if (obj.op === "error") {
      const err = errorFrom(obj);
      if (err.code === "unavailable") conn.close();
      else this._fail(err);
    }
  }

  _fail(err) {
    this.error = err;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(err);
  }

  _take() {
    const { obj, conn } = this.queue.shift();
    if (this.paused && this.queue.length <= LOW_WATER && this.conn === conn) {
      this.paused = false;
      conn.sock.resume();
    }
    const payload = obj.payload && typeof obj.payload === "object" ? obj.payload : {};
    const token = obj.ack;
    let settled = !token;
    const settle = (op) => {
      if (settled) return;
      settled = true;
      // Only the delivering connection can settle; after a reconnect the
      // daemon redelivers anyway.
      if (this.conn === conn) conn.write(JSON.stringify({ op, ack: String(token) }) + "\n");
    };
    META.set(payload, {
      channel: obj.channel || this.channel,
      id: obj.msg_id || "",
      sender: obj.from || "",
      node: obj.node || "",
      time: obj.time || "",
      seq: obj.seq == null ? null : obj.seq,
      durable: !!token,
      redelivered: !!obj.redelivered,
      ack: () => settle("ack"),
      nak: () => settle("nak"),
    });
    if (token && this.autoAck) this.last = payload;
    return payload;
  }

  _wake() {
    while (this.waiters.length && this.queue.length) {
      this.waiters.shift().resolve({ value: this._take(), done: false });
    }
  }

  /** @returns {Promise<IteratorResult<object>>} */
  next() {
    if (this.last) {
      const m = META.get(this.last);
      this.last = null;
      if (m) m.ack();
    }
    if (this.queue.length) return Promise.resolve({ value: this._take(), done: false });
    if (this.error) {
      const err = this.error;
      this.error = null;
      this.closed = true;
      return Promise.reject(err);
    }
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Called by `break`: stops; the last message is not acknowledged. */
  return() {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  /** Stop receiving. Unacknowledged durable messages are redelivered. */
  close() {
    this.closed = true;
    this.last = null;
    if (this.conn) this.conn.close();
    this.conn = null;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator]() {
    return this;
  }
}

/**
 * Iterate over messages published on `channel` from now on (on a durable
 * channel: also those this agent has not acknowledged yet). Each item is
 * the payload object; metadata(message) gives its metadata. On durable
 * channels with autoAck (the default) a message is acknowledged when the
 * loop asks for the next one, i.e. after the loop body finished without
 * `break` or a throw; otherwise it is redelivered. Errors such as
 * PermissionDenied reject the first next() (and `ready`).
 * @param {string} channel
 * @param {{autoAck?: boolean}} [options]
 * @returns {Subscription}
 */
function subscribe(channel, options = {}) {
  return new Subscription(channel, options);
}

module.exports = {
  publish,
  subscribe,
  metadata,
  close,
  socketPath,
  Subscription,
  BusError,
  PermissionDenied,
  PayloadTooLarge,
  InvalidRequest,
  Unavailable,
};
