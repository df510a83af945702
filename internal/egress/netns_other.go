//go:build !linux

package egress

import (
	"context"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// ServeNetns is only implemented on Linux.
func (g *Gateway) ServeNetns(ctx context.Context, netnsFD int, opts NetnsOptions) (*Netns, error) {
	return nil, errdefs.New(errdefs.Unsupported, "the egress gateway needs Linux network namespaces and nftables")
}

// Probe is only implemented on Linux.
func Probe() error {
	return errdefs.New(errdefs.Unsupported, "the egress gateway needs Linux network namespaces and nftables")
}

// SelfTest is only implemented on Linux.
func (g *Gateway) SelfTest(ctx context.Context) (string, error) {
	return "", errdefs.New(errdefs.Unsupported, "the egress gateway needs Linux network namespaces and nftables")
}
