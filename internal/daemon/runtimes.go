package daemon

import (
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/manifest"
)

// pinRuntimes replaces each runtime range ("python>=3.11") with the
// runtime the host has for it now, keeping the range in RuntimeRange, so
// every run and restart of the project uses the same interpreter and
// `cortex inspect` shows both.
func (d *Daemon) pinRuntimes(agents []manifest.ResolvedAgent) error {
	for i, a := range agents {
		if !manifest.IsRuntimeRange(a.Runtime) {
			continue
		}
		ip, err := d.rt.Lookup(a.Runtime)
		if err != nil {
			return errdefs.Wrap(errdefs.InvalidArgument, err)
		}
		agents[i].RuntimeRange, agents[i].Runtime = a.Runtime, ip.Runtime
	}
	return nil
}
