//go:build !linux || !cgo

package seccomp

import (
	"golang.org/x/net/bpf"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// Filter is a compiled profile; without Linux and cgo (libseccomp) there is
// none.
type Filter struct{}

func errNoFilter() error {
	return errdefs.WithHint(
		errdefs.New(errdefs.Unsupported, "seccomp filters need Linux and a cgo build with libseccomp"),
		"build on Linux with CGO_ENABLED=1 and libseccomp-dev installed")
}

// Build validates the profile, then fails: filters need Linux and cgo.
func (p Profile) Build() (*Filter, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return nil, errNoFilter()
}

// BPF fails: there is no compiled program.
func (f *Filter) BPF() ([]bpf.RawInstruction, error) { return nil, errNoFilter() }

// Load fails: there is no compiled program.
func (f *Filter) Load() error { return errNoFilter() }

// Release does nothing.
func (f *Filter) Release() {}

func checkLibrary() error { return errNoFilter() }
