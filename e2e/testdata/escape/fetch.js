// Node's fetch of one URL from inside the sandbox, for the escape suite's
// positive checks. Node's fetch ignores HTTP(S)_PROXY, so this goes through
// the egress gateway's transparent path. Prints one JSON line.
const url = process.argv[2];
fetch(url)
  .then(async (r) => {
    console.log(JSON.stringify({ status: r.status, body: await r.text() }));
  })
  .catch((e) => {
    console.log(JSON.stringify({ error: String((e && e.cause) || e) }));
    process.exitCode = 1;
  });
