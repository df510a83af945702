package daemon

import (
	"github.com/cortexrt/cortex/internal/seccomp"
	"golang.org/x/net/bpf"
)

// compileSeccomp checks this host and build can filter agents and returns
// the agent filter compiled once, for every sandbox to load as is.
func compileSeccomp() ([]bpf.RawInstruction, error) {
	if err := seccomp.Probe(); err != nil {
		return nil, err
	}
	f, err := seccomp.Default().Build()
	if err != nil {
		return nil, err
	}
	defer f.Release()
	return f.BPF()
}
