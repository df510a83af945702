package sandbox

import (
	"fmt"

	"github.com/cortexrt/cortex/internal/seccomp"
)

// stepSeccomp loads the agent syscall filter on every thread of the init
// (TSYNC), then stacks SetIDProfile on it; the agent, forked after, and all
// its children inherit both.
func stepSeccomp(s *initState) error {
	if prog := s.spec.Confine.SeccompProgram; len(prog) > 0 {
		if err := seccomp.LoadProgram(prog); err != nil {
			return err
		}
	} else if err := loadProfile(seccomp.Default()); err != nil {
		return err
	}
	if err := loadProfile(SetIDProfile()); err != nil {
		return fmt.Errorf("set-id filter: %w", err)
	}
	return nil
}

func loadProfile(p seccomp.Profile) error {
	f, err := p.Build()
	if err != nil {
		return fmt.Errorf("build seccomp filter: %w", err)
	}
	defer f.Release()
	return f.Load()
}
