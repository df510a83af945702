# A Python agent using only the standard library, as it would inside a
# sandbox: OPENAI_* and ANTHROPIC_* come from llm.Env.
import json
import os
import urllib.error
import urllib.request


def post(url, body, headers):
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    return urllib.request.urlopen(req, timeout=30)


base = os.environ["OPENAI_BASE_URL"]
auth = {"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"]}
hello = [{"role": "user", "content": "hello"}]
out = {}

with post(base + "/chat/completions", {"model": "fast", "messages": hello}, auth) as r:
    out["chat"] = json.load(r)["choices"][0]["message"]["content"]
    out["latency_header"] = r.headers.get("X-Cortex-Added-Latency-Ms")

text = ""
with post(base + "/chat/completions", {"model": "fast", "messages": hello, "stream": True}, auth) as r:
    for raw in r:
        line = raw.decode().strip()
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in json.loads(line[6:])["choices"]:
                text += choice["delta"].get("content") or ""
out["stream"] = text

anthropic = {"x-api-key": os.environ["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01"}
with post(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages",
          {"model": "fast", "max_tokens": 50, "messages": hello}, anthropic) as r:
    out["messages"] = json.load(r)["content"][0]["text"]

try:
    post(base + "/chat/completions", {"model": "secret", "messages": hello}, auth)
except urllib.error.HTTPError as e:
    out["forbidden"] = e.code
    out["forbidden_message"] = json.load(e)["error"]["message"]

print(json.dumps(out))
