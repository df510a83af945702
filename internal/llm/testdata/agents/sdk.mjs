// The official OpenAI and Anthropic Node SDKs against the gateway, with
// nothing but the environment llm.Env gives an agent. Run by
// TestOfficialSDKs when LLM_SDK_DIR names a directory holding
// node_modules/openai and node_modules/@anthropic-ai/sdk.
import { createRequire } from "node:module";

const require = createRequire(process.env.LLM_SDK_DIR + "/");
const OpenAI = require("openai").default ?? require("openai");
const Anthropic = require("@anthropic-ai/sdk").default ?? require("@anthropic-ai/sdk");

const out = {};
const openai = new OpenAI({ maxRetries: 0 });
const tools = [{ type: "function", function: { name: "get_forecast", parameters: { type: "object", properties: { city: { type: "string" } } } } }];
const messages = [{ role: "system", content: "be brief" }, { role: "user", content: "weather?" }];

const c = await openai.chat.completions.create({ model: "fast", messages, tools });
out.chat_text = c.choices[0].message.content;
out.chat_tool = c.choices[0].message.tool_calls?.[0]?.function;
out.chat_usage = c.usage;

const s = await openai.chat.completions.create({ model: "fast", messages, tools, stream: true, stream_options: { include_usage: true } });
let text = "", args = "", name = "", usage = null;
for await (const ch of s) {
  if (ch.usage) usage = ch.usage;
  for (const choice of ch.choices) {
    text += choice.delta.content ?? "";
    for (const tc of choice.delta.tool_calls ?? []) {
      name += tc.function?.name ?? "";
      args += tc.function?.arguments ?? "";
    }
  }
}
out.stream_text = text;
out.stream_tool = { name, arguments: args };
out.stream_usage = usage;

const e = await openai.embeddings.create({ model: "emb", input: ["hello"] });
out.embedding = e.data[0].embedding;

const models = [];
for await (const m of openai.models.list()) models.push(m.id);
out.models = models;

const anthropic = new Anthropic({ maxRetries: 0 });
const atools = [{ name: "get_forecast", input_schema: { type: "object", properties: { city: { type: "string" } } } }];
const m = await anthropic.messages.create({ model: "fast", max_tokens: 100, system: "be brief", messages: [{ role: "user", content: "weather?" }], tools: atools });
out.msg_content = m.content;
out.msg_stop = m.stop_reason;
out.msg_usage = m.usage;

const ms = anthropic.messages.stream({ model: "fast", max_tokens: 100, messages: [{ role: "user", content: "weather?" }], tools: atools });
const final = await ms.finalMessage();
out.msgstream_content = final.content;
out.msgstream_stop = final.stop_reason;

try {
  await openai.chat.completions.create({ model: "secret", messages });
} catch (err) {
  out.forbidden = err.status;
}
console.log(JSON.stringify(out));
