//go:build !linux || !(amd64 || arm64)

package kaudit

import (
	"io"
	"log/slog"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// Auditor reads no records on this platform.
type Auditor struct{}

// New returns an auditor whose Watch fails.
func New(string, *slog.Logger) *Auditor { return &Auditor{} }

// Watch is unsupported here.
func (*Auditor) Watch(int, uint64, func(Denial)) (io.Closer, error) {
	return nil, errdefs.New(errdefs.Unsupported, "kernel audit records are read on Linux (amd64, arm64) only")
}

// Close does nothing.
func (*Auditor) Close() error { return nil }

// PidNS is unsupported here.
func PidNS(int) (uint64, error) {
	return 0, errdefs.New(errdefs.Unsupported, "pid namespaces are Linux's")
}

// Probe is unsupported here.
func Probe() error {
	return errdefs.New(errdefs.Unsupported, "kernel audit records are read on Linux only")
}

// Cleanup does nothing here.
func (*Auditor) Cleanup() error { return nil }
