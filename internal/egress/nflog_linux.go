package egress

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/cortexrt/cortex/internal/logkey"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nflogGroup is the NFLOG group the reject rule logs to. Groups are per
// network namespace, so every namespace can use the same one.
const nflogGroup = 7

// From linux/netfilter/nfnetlink_log.h (not in x/sys).
const (
	nfulnlMsgPacket  = 0
	nfulnlMsgConfig  = 1
	nfulaCfgCmd      = 1
	nfulaCfgMode     = 2
	nfulnlCfgCmdBind = 1
	nfulnlCopyPacket = 2
	nfulaPayload     = 9
	nflogCopyRange   = 64 // enough for an IPv6 header and the port
)

// nflogConn reads the packets the reject rule logged in one namespace.
type nflogConn struct {
	c *netlink.Conn
}

// openNFLog binds group in the namespace fd.
func openNFLog(fd int, group uint16) (*nflogConn, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: fd})
	if err != nil {
		return nil, err
	}
	_ = c.SetReadBuffer(1 << 20)
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(nfulaCfgCmd, []byte{nfulnlCfgCmdBind})
	mode := make([]byte, 6) // struct nfulnl_msg_config_mode, packed
	binary.BigEndian.PutUint32(mode, nflogCopyRange)
	mode[4] = nfulnlCopyPacket
	ae.Bytes(nfulaCfgMode, mode)
	attrs, err := ae.Encode()
	if err != nil {
		c.Close()
		return nil, err
	}
	hdr := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0}
	binary.BigEndian.PutUint16(hdr[2:], group)
	_, err = c.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_ULOG<<8 | nfulnlMsgConfig),
			Flags: netlink.Request | netlink.Acknowledge,
		},
		Data: append(hdr, attrs...),
	})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("bind nflog group %d: %w", group, err)
	}
	return &nflogConn{c: c}, nil
}

func (n *nflogConn) Close() error { return n.c.Close() }

// serveNFLog reports each logged packet as a denial until the socket is
// closed.
func (a *Netns) serveNFLog(n *nflogConn) {
	for {
		msgs, err := n.c.Receive()
		if err != nil {
			if a.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			if errors.Is(err, unix.ENOBUFS) {
				a.dropped.Add(1) // at least one; the kernel does not say how many
				continue
			}
			a.log.Warn("egress nflog receive", logkey.Err, err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		for _, m := range msgs {
			if m.Header.Type != netlink.HeaderType(unix.NFNL_SUBSYS_ULOG<<8|nfulnlMsgPacket) || len(m.Data) < 4 {
				continue
			}
			d, ok := parseLoggedPacket(m.Data[0], m.Data[4:])
			if !ok {
				continue
			}
			if name, found := a.pool.name(mustAddr(d.Addr)); found {
				d.Name = name
			}
			a.deny(d, ReasonProtocol)
		}
	}
}

func mustAddr(s string) netip.Addr {
	a, _ := netip.ParseAddr(s)
	return a
}

// parseLoggedPacket reads the destination of the packet in an NFLOG
// message's attributes.
func parseLoggedPacket(family byte, attrs []byte) (Denial, bool) {
	ad, err := netlink.NewAttributeDecoder(attrs)
	if err != nil {
		return Denial{}, false
	}
	var payload []byte
	for ad.Next() {
		if ad.Type() == nfulaPayload {
			payload = ad.Bytes()
		}
	}
	if ad.Err() != nil || payload == nil {
		return Denial{}, false
	}
	return parseIPPacket(family, payload)
}

// parseIPPacket returns the protocol, destination address and port of a
// raw IPv4 or IPv6 packet.
func parseIPPacket(family byte, p []byte) (Denial, bool) {
	var (
		proto byte
		dst   netip.Addr
		l4    []byte
	)
	switch family {
	case unix.AF_INET:
		if len(p) < 20 || p[0]>>4 != 4 {
			return Denial{}, false
		}
		ihl := int(p[0]&0x0f) * 4
		if ihl < 20 || len(p) < ihl {
			return Denial{}, false
		}
		proto, dst, l4 = p[9], netip.AddrFrom4([4]byte(p[16:20])), p[ihl:]
	case unix.AF_INET6:
		if len(p) < 40 || p[0]>>4 != 6 {
			return Denial{}, false
		}
		proto, dst, l4 = p[6], netip.AddrFrom16([16]byte(p[24:40])), p[40:]
	default:
		return Denial{}, false
	}
	d := Denial{Addr: dst.String()}
	switch proto {
	case unix.IPPROTO_UDP, unix.IPPROTO_TCP, unix.IPPROTO_SCTP, unix.IPPROTO_UDPLITE:
		if len(l4) >= 4 {
			d.Port = int(binary.BigEndian.Uint16(l4[2:4]))
		}
	}
	switch proto {
	case unix.IPPROTO_UDP:
		d.Proto = "udp"
	case unix.IPPROTO_TCP:
		d.Proto = "tcp"
	case unix.IPPROTO_ICMP:
		d.Proto = "icmp"
	case unix.IPPROTO_ICMPV6:
		d.Proto = "icmpv6"
	default:
		d.Proto = fmt.Sprintf("ip/%d", proto)
	}
	return d, true
}
