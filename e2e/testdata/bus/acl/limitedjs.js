'use strict';
const { publish, subscribe } = require('cortex/bus');

async function attempt(what, fn) {
  try {
    await fn();
    console.log(what, '-> ALLOWED');
  } catch (e) {
    console.log(what, '-> refused', e.constructor.name, e.code, e.message);
  }
}

exports.run = async () => {
  await attempt('publish secret', () => publish('secret', { leak: 'js' }));
  await attempt('subscribe secret', async () => {
    const sub = subscribe('secret');
    try {
      await sub.ready;
    } finally {
      sub.close();
    }
  });
  await publish('allowed', { by: 'limitedjs', done: true });
};
