package runtimestest

import (
	"strings"
	"testing"
)

func TestHostManifest(t *testing.T) {
	py, node := Python(t), Node(t)
	in := "agents:\n  - name: a\n    runtime: python3.11\n  - runtime: \"nodejs20\"\n    name: b\n  - name: c\n    runtime: python3.12\n"
	want := "agents:\n  - name: a\n    runtime: " + py.Runtime + "\n  - runtime: " + node.Runtime + "\n    name: b\n  - name: c\n    runtime: python3.12\n"
	if got := string(HostManifest(t, []byte(in))); got != want {
		t.Errorf("HostManifest:\n%s\nwant\n%s", got, want)
	}
	if !strings.HasPrefix(py.Runtime, "python3.") || !strings.HasPrefix(node.Runtime, "nodejs") {
		t.Errorf("Python %+v, Node %+v", py, node)
	}
	if len(Pythons(t)) == 0 {
		t.Error("no Pythons")
	}
}
