package daemon

import "github.com/cortexrt/cortex/internal/seccomp"

// seccompBuildProbe reports whether this host and build can load the agent
// filter: the kernel's seccomp, and the filter compiles.
func seccompBuildProbe() error {
	if err := seccomp.Probe(); err != nil {
		return err
	}
	f, err := seccomp.Default().Build()
	if err != nil {
		return err
	}
	f.Release()
	return nil
}
