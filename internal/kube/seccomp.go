package kube

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
)

// SeccompProfile is the agent seccomp filter in OCI form
// (internal/seccomp's Default().OCI()), generated into profiles/agent.json
// by `go test ./internal/kube -run TestSeccompProfile -update`; the test
// fails when the file and the filter differ. It is embedded rather than
// computed so the cortex CLI does not link libseccomp.
//
//go:embed profiles/agent.json
var SeccompProfileJSON []byte

// SeccompProfilePath is where pods find the profile, relative to the
// kubelet's seccomp root: cortex/agent-<first 12 hex of its SHA-256>.json,
// so a changed filter is a new file and running pods keep theirs.
func SeccompProfilePath() string {
	h := sha256.Sum256(SeccompProfileJSON)
	return SeccompDir + "/agent-" + hex.EncodeToString(h[:6]) + ".json"
}
