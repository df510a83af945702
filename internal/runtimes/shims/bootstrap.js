'use strict';
// Cortex Node bootstrap.
//
// Started by the sandbox as `node bootstrap.js path/file.js:export`. Loads the
// file relative to the working directory (the agent's code; CommonJS or ES
// module), calls the export and awaits it when it returns a promise. A return
// exits 0 once the event loop is idle; an uncaught error prints its stack to
// stderr and exits 1.
const path = require('path');

async function main() {
  const target = process.argv[2] || '';
  const i = target.lastIndexOf(':');
  if (i <= 0) {
    process.stderr.write('cortex bootstrap: usage: bootstrap.js path/file.js:export\n');
    process.exit(2);
  }
  const file = target.slice(0, i);
  const name = target.slice(i + 1);
  process.argv.splice(1, 2, target);
  const full = path.resolve(process.cwd(), file);
  let mod;
  if (full.endsWith('.mjs')) {
    mod = await import(require('url').pathToFileURL(full).href);
  } else {
    try {
      mod = require(full);
    } catch (err) {
      if (err && err.code === 'ERR_REQUIRE_ESM') {
        mod = await import(require('url').pathToFileURL(full).href);
      } else {
        throw err;
      }
    }
  }
  let fn = mod && mod[name];
  if (typeof fn !== 'function' && mod && mod.default && typeof mod.default[name] === 'function') {
    fn = mod.default[name];
  }
  if (typeof fn !== 'function') {
    process.stderr.write(`cortex: ${file} has no exported function "${name}": check the entrypoint in cortex.yaml\n`);
    process.exit(1);
  }
  await fn();
}

main().catch((err) => {
  process.stderr.write(((err && err.stack) || String(err)) + '\n');
  process.exit(1);
});
