// A Node agent using only fetch, as it would inside a sandbox.
const base = process.env.OPENAI_BASE_URL;
const auth = { Authorization: `Bearer ${process.env.OPENAI_API_KEY}`, "Content-Type": "application/json" };
const hello = [{ role: "user", content: "hello" }];
const out = {};

let res = await fetch(`${base}/chat/completions`, { method: "POST", headers: auth, body: JSON.stringify({ model: "fast", messages: hello }) });
out.chat = (await res.json()).choices[0].message.content;
out.latency_header = res.headers.get("x-cortex-added-latency-ms");

res = await fetch(`${base}/chat/completions`, { method: "POST", headers: auth, body: JSON.stringify({ model: "fast", messages: hello, stream: true }) });
let buf = "";
let text = "";
const dec = new TextDecoder();
for await (const chunk of res.body) {
  buf += dec.decode(chunk, { stream: true });
  let i;
  while ((i = buf.indexOf("\n\n")) >= 0) {
    const ev = buf.slice(0, i);
    buf = buf.slice(i + 2);
    for (const line of ev.split("\n")) {
      if (line.startsWith("data: ") && line !== "data: [DONE]") {
        for (const c of JSON.parse(line.slice(6)).choices) text += c.delta.content ?? "";
      }
    }
  }
}
out.stream = text;

res = await fetch(`${process.env.ANTHROPIC_BASE_URL}/v1/messages`, {
  method: "POST",
  headers: { "x-api-key": process.env.ANTHROPIC_API_KEY, "anthropic-version": "2023-06-01", "Content-Type": "application/json" },
  body: JSON.stringify({ model: "fast", max_tokens: 50, messages: hello }),
});
out.messages = (await res.json()).content[0].text;

res = await fetch(`${base}/chat/completions`, { method: "POST", headers: auth, body: JSON.stringify({ model: "secret", messages: hello }) });
out.forbidden = res.status;
out.forbidden_message = (await res.json()).error.message;

console.log(JSON.stringify(out));
