from cortex.bus import publish, subscribe


def main():
    findings = []
    for message in subscribe("analysis-results"):
        if message["status"] == "complete":
            break
        print(message["score"])
        findings.append("- %s (score %.2f)" % (message["topic"], message["score"]))
    report = "# Research report\n\n" + "\n".join(findings) + "\n"
    with open("output/report.md", "w") as f:
        f.write(report)
    print("wrote output/report.md with %d findings" % len(findings))
    publish(channel="reports", payload={"title": "Research report", "findings": len(findings)})
