'use strict';
const { subscribe } = require('cortex/bus');

exports.run = async () => {
  for await (const report of subscribe('reports')) {
    console.log(`summary: "${report.title}" has ${report.findings} findings`);
    break;
  }
};
