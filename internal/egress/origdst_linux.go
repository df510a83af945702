package egress

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// soOriginalDst is SO_ORIGINAL_DST (IPv4) and IP6T_SO_ORIGINAL_DST (IPv6).
const soOriginalDst = 80

// originalDst returns the destination a redirected connection was made to,
// from conntrack.
func originalDst(c *net.TCPConn) (netip.AddrPort, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	local, _ := netip.ParseAddrPort(c.LocalAddr().String())
	v6 := local.Addr().Is6() && !local.Addr().Is4In6()
	var (
		buf  [28]byte // sockaddr_in6; sockaddr_in fits
		n    uint32
		serr error
	)
	err = raw.Control(func(fd uintptr) {
		level, size := unix.SOL_IP, uint32(16)
		if v6 {
			level, size = unix.SOL_IPV6, 28
		}
		n = size
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, uintptr(level), soOriginalDst,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		if e != 0 {
			serr = e
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("SO_ORIGINAL_DST: %w", err)
	}
	port := binary.BigEndian.Uint16(buf[2:4])
	if v6 {
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(buf[8:24])), port), nil
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(buf[4:8])), port), nil
}
