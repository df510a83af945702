package cgroups

import (
	"log/slog"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// New detects the host's cgroup mode and returns the Manager for groups
// under parent (a name like "cortex" or "cortex-<hash>", relative to each
// hierarchy's root). v1 and hybrid hosts get the v1 driver, unified hosts
// the v2 driver. It fails with FailedPrecondition if the host has no
// usable memory controller, so no agent can run without a memory ceiling.
// logger is used as given (the daemon names the subsystem); nil discards.
func New(parent string, logger *slog.Logger) (Manager, error) {
	if err := validName("parent", parent); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l, err := detect()
	if err != nil {
		return nil, errdefs.Wrap(errdefs.Unavailable, err)
	}
	switch l.mode {
	case "v1", "hybrid":
		return newV1(parent, logger, l)
	case "v2":
		m, err := newV2(parent, logger, l.v2Mount, l.v2Root)
		if err != nil {
			return nil, err
		}
		if !m.has("memory") {
			return nil, errdefs.WithHint(
				errdefs.New(errdefs.FailedPrecondition, "cgroup v2 at %s does not offer the memory controller", l.v2Mount),
				"delegate the memory controller to cortexd's cgroup (systemd: Delegate=yes)")
		}
		return m, nil
	}
	return nil, errdefs.WithHint(
		errdefs.New(errdefs.FailedPrecondition, "no cgroup filesystem is mounted"),
		"mount cgroup2 at /sys/fs/cgroup (mount -t cgroup2 none /sys/fs/cgroup)")
}
