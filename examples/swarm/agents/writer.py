import json
import os
import urllib.request

from cortex.bus import publish, subscribe


def summarize(findings):
    """One line about the findings, from the LLM gateway (alias "fast").

    The official openai client works the same way (OPENAI_BASE_URL and
    OPENAI_API_KEY point at the gateway); this example keeps to the
    standard library. Run offline, the project's cassette answers
    (llm.replay in cortex.yaml): no provider, no key, no network.
    """
    body = {
        "model": "fast",
        "messages": [
            {"role": "system", "content": "You write one-line summaries of research findings."},
            {"role": "user", "content": "Summarise these findings:\n" + "\n".join(findings)},
        ],
    }
    req = urllib.request.Request(
        os.environ["OPENAI_BASE_URL"] + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"], "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)["choices"][0]["message"]["content"]


def main():
    findings = []
    for message in subscribe("analysis-results"):
        if message["status"] == "complete":
            break
        print(message["score"])
        findings.append("- %s (score %.2f)" % (message["topic"], message["score"]))
    summary = summarize(findings)
    print("summary:", summary)
    report = "# Research report\n\n" + summary + "\n\n" + "\n".join(findings) + "\n"
    with open("output/report.md", "w") as f:
        f.write(report)
    print("wrote output/report.md with %d findings" % len(findings))
    publish(channel="reports", payload={"title": "Research report", "findings": len(findings)})
