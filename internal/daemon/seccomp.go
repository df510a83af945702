package daemon

import (
	"github.com/cortexrt/cortex/internal/sandbox"
	"github.com/cortexrt/cortex/internal/seccomp"
	"golang.org/x/net/bpf"
)

// compileSeccomp checks this host and build can filter agents and returns
// the agent filters compiled once, for every sandbox to load as they are.
func compileSeccomp() ([][]bpf.RawInstruction, error) {
	if err := seccomp.Probe(); err != nil {
		return nil, err
	}
	return sandbox.SeccompPrograms()
}
