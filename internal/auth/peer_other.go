//go:build !linux

package auth

import (
	"context"
	"net"
)

// ConnContext records no peer credentials off Linux (cortexd runs on
// Linux only); the pipeline refuses unix socket callers without them.
func ConnContext(ctx context.Context, _ net.Conn) context.Context { return ctx }
