package daemon

import (
	"github.com/cortexrt/cortex/internal/deps"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/manifest"
)

// pinRuntimes replaces each runtime range ("python>=3.11") with the
// runtime the host has for it now, keeping the range in RuntimeRange, so
// every run and restart of the project uses the same interpreter and
// `cortex inspect` shows both.
//
// An agent with vendored packages pins to the runtime they were installed
// for when its range allows it and the host has it, so a bundle made on
// this host runs with the interpreter its packages match.
func (d *Daemon) pinRuntimes(agents []manifest.ResolvedAgent, meta *deps.Meta) error {
	for i, a := range agents {
		if !manifest.IsRuntimeRange(a.Runtime) {
			continue
		}
		if want := preferredRuntime(meta, a.Name, a.Runtime); want != "" {
			if _, err := d.rt.Lookup(want); err == nil {
				agents[i].RuntimeRange, agents[i].Runtime = a.Runtime, want
				continue
			}
		}
		ip, err := d.rt.Lookup(a.Runtime)
		if err != nil {
			return errdefs.Wrap(errdefs.InvalidArgument, err)
		}
		agents[i].RuntimeRange, agents[i].Runtime = a.Runtime, ip.Runtime
	}
	return nil
}
