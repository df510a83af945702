'use strict';
// The worker agent: cortex calls main() in its sandbox.
exports.main = async () => {
  console.log(JSON.stringify({ level: 'info', msg: 'hello', agent: process.env.CORTEX_AGENT, project: process.env.CORTEX_PROJECT }));
  console.log('Edit agent.js, then: cortex run .');
};
