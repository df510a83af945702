'use strict';
const { publish } = require('cortex/bus');

exports.run = async () => {
  for (let i = 0; i < 3; i++) {
    const id = await publish('n2p', { lang: 'node', i, text: 'h\u00e9llo \u2713 "q"', nested: { list: [1, 2.5, null, true], empty: {} } });
    console.log('published', i, id);
  }
};
