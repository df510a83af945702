'use strict';
const { publish } = require('cortex/bus');

exports.run = async () => {
  try {
    await publish('big', { x: 'a'.repeat(2 << 20) });
    console.log('js over limit -> ALLOWED');
  } catch (e) {
    console.log('js over limit -> refused', e.constructor.name, e.code, e.message);
  }
  await publish('big', { done: 'bigjs' });
};
