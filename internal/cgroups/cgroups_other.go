//go:build !linux

package cgroups

import (
	"log/slog"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// New fails: cgroups exist only on Linux.
func New(parent string, logger *slog.Logger) (Manager, error) {
	return nil, errdefs.New(errdefs.Unsupported, "cgroups are only available on Linux")
}

// Probe reports that this platform has no cgroups.
func Probe() HostInfo {
	return HostInfo{Mode: "none", Notes: []string{"cgroups are only available on Linux"}}
}

// ParentDirs: no cgroups here.
func ParentDirs(parent string) []string { return nil }
