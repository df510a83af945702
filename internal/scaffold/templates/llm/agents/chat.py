"""Asks the LLM gateway one question, with the official openai client.

The gateway is OpenAI-compatible: OPENAI_BASE_URL and OPENAI_API_KEY (the
agent's own token, never a provider key) are set in the sandbox, so the
client needs no configuration. Where the openai package is not installed,
the same request goes out with the standard library, so the project also
runs where its requirements cannot be installed.
"""
import json
import os
import urllib.request

QUESTION = "In one sentence: why run AI agents in sandboxes?"


def ask(question):
    messages = [{"role": "user", "content": question}]
    try:
        from openai import OpenAI
    except ImportError:
        req = urllib.request.Request(
            os.environ["OPENAI_BASE_URL"] + "/chat/completions",
            data=json.dumps({"model": "fast", "messages": messages}).encode(),
            headers={"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"], "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.load(r)["choices"][0]["message"]["content"]
    client = OpenAI()
    answer = client.chat.completions.create(model="fast", messages=messages)
    return answer.choices[0].message.content


def main():
    print("Q:", QUESTION)
    print("A:", ask(QUESTION))
