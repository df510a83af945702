"use strict";
/**
 * Cortex agent SDK: require("cortex/bus") and require("cortex/log"), or
 * require("cortex").bus / .log.
 * @module cortex
 */
module.exports = {
  get bus() {
    return require("./bus");
  },
  get log() {
    return require("./log");
  },
};
