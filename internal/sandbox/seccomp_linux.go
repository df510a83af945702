package sandbox

import (
	"fmt"

	"golang.org/x/net/bpf"

	"github.com/cortexrt/cortex/internal/seccomp"
)

// stepSeccomp loads the agent syscall filter on every thread of the init
// (TSYNC), then stacks SetIDProfile on it; the agent, forked after, and all
// its children inherit both.
func stepSeccomp(s *initState) error {
	if progs := s.spec.Confine.SeccompPrograms; len(progs) > 0 {
		for _, prog := range progs {
			if err := seccomp.LoadProgram(prog); err != nil {
				return err
			}
		}
		return nil
	}
	if err := loadProfile(seccomp.Default()); err != nil {
		return err
	}
	if err := loadProfile(SetIDProfile()); err != nil {
		return fmt.Errorf("set-id filter: %w", err)
	}
	return nil
}

// SeccompPrograms compiles the filters every confined agent runs under,
// in the order the init stacks them, for the daemon to compile once.
func SeccompPrograms() ([][]bpf.RawInstruction, error) {
	var out [][]bpf.RawInstruction
	for _, p := range []seccomp.Profile{seccomp.Default(), SetIDProfile()} {
		f, err := p.Build()
		if err != nil {
			return nil, err
		}
		prog, err := f.BPF()
		f.Release()
		if err != nil {
			return nil, err
		}
		out = append(out, prog)
	}
	return out, nil
}

func loadProfile(p seccomp.Profile) error {
	f, err := p.Build()
	if err != nil {
		return fmt.Errorf("build seccomp filter: %w", err)
	}
	defer f.Release()
	return f.Load()
}
