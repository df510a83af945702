package kube

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/cortexrt/cortex/internal/seccomp"
)

var update = flag.Bool("update", false, "rewrite golden files and the generated seccomp profile")

// seccompJSON is the profile as the kube package and the Helm chart ship it.
func seccompJSON(t *testing.T) []byte {
	t.Helper()
	p, err := seccomp.Default().OCI()
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// TestSeccompProfile: the embedded Localhost profile and the Helm chart's
// copy are exactly internal/seccomp's filter in OCI form.
func TestSeccompProfile(t *testing.T) {
	want := seccompJSON(t)
	chart := filepath.Join("..", "..", "deploy", "helm", "cortex", "files", "seccomp", "agent.json")
	for _, p := range []string{filepath.Join("profiles", "agent.json"), chart} {
		if *update {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from internal/seccomp's profile; regenerate: go test ./internal/kube -run TestSeccompProfile -update", p)
		}
	}
	if !*update && !bytes.Equal(SeccompProfileJSON, want) {
		t.Error("the embedded profile is stale; rebuild after -update")
	}
}
