'use strict';
const { subscribe } = require('cortex/bus');

exports.run = async () => {
  for await (const m of subscribe('pings')) console.log('ping', m.k);
};
