'use strict';
const { subscribe, metadata } = require('cortex/bus');

exports.run = async () => {
  let received = 0;
  for await (const message of subscribe('p2n')) {
    console.log('msg', JSON.stringify(message), 'from=' + metadata(message).sender);
    if (++received === 3) break;
  }
};
