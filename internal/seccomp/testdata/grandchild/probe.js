// Run by the seccomp kernel tests as a grandchild of the process that loaded
// the filter. Prints one JSON object: each check's outcome and the Seccomp
// mode this process reports.
'use strict';
const fs = require('fs');
const os = require('os');
const childProcess = require('child_process');
const { Worker } = require('worker_threads');

async function main() {
  const out = {};
  // libuv may try io_uring for file I/O; refused, it uses its thread pool.
  const status = await fs.promises.readFile('/proc/self/status', 'utf8');
  out.fs = status.includes('Seccomp:') ? 'ok' : 'no Seccomp line';
  out.worker = await new Promise((resolve) => {
    const w = new Worker('require("worker_threads").parentPort.postMessage(42)', { eval: true });
    w.on('message', (m) => resolve(m === 42 ? 'ok' : 'got ' + m));
    w.on('error', (e) => resolve(String(e)));
  });
  const echo = childProcess.execFileSync('/bin/sh', ['-c', 'echo ok']).toString();
  out.child = echo === 'ok\n' ? 'ok' : JSON.stringify(echo);
  out.interfaces = Object.keys(os.networkInterfaces()).length > 0 ? 'ok' : 'none';
  const m = status.match(/^Seccomp:\s*(\d)/m);
  out.seccomp_mode = m ? m[1] : 'none';
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
