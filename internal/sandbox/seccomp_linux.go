package sandbox

import (
	"fmt"

	"github.com/cortexrt/cortex/internal/seccomp"
)

// stepSeccomp loads the agent syscall filter on every thread of the init
// (TSYNC); the agent, forked after, and all its children inherit it.
func stepSeccomp(s *initState) error {
	if prog := s.spec.Confine.SeccompProgram; len(prog) > 0 {
		return seccomp.LoadProgram(prog)
	}
	f, err := seccomp.Default().Build()
	if err != nil {
		return fmt.Errorf("build seccomp filter: %w", err)
	}
	defer f.Release()
	return f.Load()
}
