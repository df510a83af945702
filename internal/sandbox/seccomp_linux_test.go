package sandbox

import (
	"testing"

	"github.com/cortexrt/cortex/internal/seccomp"
)

// BenchmarkSetIDFilterBuild is what stacking the set-id filter adds to
// each sandbox start: the init compiles it before loading it.
func BenchmarkSetIDFilterBuild(b *testing.B) {
	for b.Loop() {
		f, err := SetIDProfile().Build()
		if err != nil {
			b.Fatal(err)
		}
		f.Release()
	}
}

// BenchmarkDefaultFilterBuild is the agent profile's compile, for scale
// (the daemon does it once, not per sandbox).
func BenchmarkDefaultFilterBuild(b *testing.B) {
	for b.Loop() {
		f, err := seccomp.Default().Build()
		if err != nil {
			b.Fatal(err)
		}
		f.Release()
	}
}
