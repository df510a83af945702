//go:build !linux

package bus

import "net"

// peerUID is unknown (-1) where SO_PEERCRED is missing; the socket's owner
// and mode remain the access control there.
func peerUID(c *net.UnixConn) (int, error) { return -1, nil }
