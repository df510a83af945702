"use strict";
/**
 * Structured logging for Cortex agents (Node 18/20, no dependencies).
 *
 *   const log = require("cortex/log");
 *   log.info("fetched page", { url, bytes: n });
 *
 * writes one JSON object per line to stdout:
 *
 *   {"time":"2025-01-02T03:04:05.678Z","level":"info","msg":"fetched page","url":"...","bytes":123}
 *
 * The Cortex log collector parses such lines (a JSON object with "msg" and
 * "level") into a structured record with the other keys as fields. Field
 * names "time", "level" and "msg" are reserved; such fields are written as
 * "field.time" etc. Errors are written as {name, message, stack}; BigInt as
 * a string; circular references as "[Circular]". Levels: debug, info, warn,
 * error.
 * @module cortex/log
 */

const RESERVED = new Set(["time", "level", "msg"]);
const LEVELS = ["debug", "info", "warn", "error"];

function replacer() {
  const seen = new WeakSet();
  return function (key, value) {
    if (typeof value === "bigint") return value.toString();
    if (value instanceof Error) {
      const out = { name: value.name, message: value.message, stack: value.stack };
      for (const k of Object.keys(value)) out[k] = value[k];
      return out;
    }
    if (value !== null && typeof value === "object") {
      if (seen.has(value)) return "[Circular]";
      seen.add(value);
    }
    return value;
  };
}

/**
 * @param {string} level
 * @param {*} msg
 * @param {Object<string, *>} [fields]
 */
function write(level, msg, fields) {
  const rec = { time: new Date().toISOString(), level, msg: String(msg) };
  if (fields && typeof fields === "object") {
    for (const k of Object.keys(fields)) rec[RESERVED.has(k) ? "field." + k : k] = fields[k];
  }
  let line;
  try {
    line = JSON.stringify(rec, replacer());
  } catch (e) {
    line = JSON.stringify({ time: rec.time, level, msg: rec.msg, log_error: String(e) });
  }
  process.stdout.write(line + "\n");
}

/** A logger that adds `fields` to every record. */
class Logger {
  /** @param {Object<string, *>} [fields] */
  constructor(fields = {}) {
    this.fields = fields;
  }
  /** @param {Object<string, *>} fields @returns {Logger} */
  child(fields) {
    return new Logger({ ...this.fields, ...fields });
  }
  /** @param {string} level @param {*} msg @param {Object<string, *>} [fields] */
  log(level, msg, fields) {
    if (level === "warning") level = "warn";
    if (!LEVELS.includes(level)) throw new TypeError(`level must be one of ${LEVELS.join(", ")}`);
    write(level, msg, { ...this.fields, ...(fields || {}) });
  }
  /** @param {*} msg @param {Object<string, *>} [fields] */
  debug(msg, fields) {
    this.log("debug", msg, fields);
  }
  /** @param {*} msg @param {Object<string, *>} [fields] */
  info(msg, fields) {
    this.log("info", msg, fields);
  }
  /** @param {*} msg @param {Object<string, *>} [fields] */
  warn(msg, fields) {
    this.log("warn", msg, fields);
  }
  /** @param {*} msg @param {Object<string, *>} [fields] */
  warning(msg, fields) {
    this.log("warn", msg, fields);
  }
  /** @param {*} msg @param {Object<string, *>} [fields] */
  error(msg, fields) {
    this.log("error", msg, fields);
  }
}

const root = new Logger();

module.exports = {
  Logger,
  LEVELS,
  /** @param {Object<string, *>} fields @returns {Logger} */
  child: (fields) => root.child(fields),
  log: (level, msg, fields) => root.log(level, msg, fields),
  debug: (msg, fields) => root.debug(msg, fields),
  info: (msg, fields) => root.info(msg, fields),
  warn: (msg, fields) => root.warn(msg, fields),
  warning: (msg, fields) => root.warn(msg, fields),
  error: (msg, fields) => root.error(msg, fields),
};
