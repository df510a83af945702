package egress

import (
	"encoding/binary"
	"fmt"
	"net"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TableName is the nftables table (family inet) the gateway owns in each
// agent namespace.
const TableName = "cortex-egress"

// ruleSpec is the gateway's ruleset, as data so tests can compare it without
// a kernel. Equivalent nft syntax:
//
//	table inet cortex-egress {
//	  chain nat-out { type nat hook output priority -100;
//	    meta l4proto tcp ip daddr != 127.0.0.0/8 redirect to :P
//	    meta l4proto tcp ip6 daddr != ::1 redirect to :P          (with IPv6)
//	  }
//	  chain filter-out { type filter hook output priority 0;
//	    meta l4proto tcp accept                   (redirected above)
//	    ip daddr 127.0.0.0/8 accept               (the agent's own loopback)
//	    ip6 daddr ::1 accept
//	    meta l4proto icmp icmp type != echo-request accept      (kernel errors)
//	    meta l4proto ipv6-icmp icmpv6 type != echo-request accept
//	    log group G queue-threshold 1 reject     (UDP, ping, anything else)
//	  }
//	}
func ruleSpec(port uint16, v6 bool, group uint16) (nat, filter [][]expr.Any) {
	p := make([]byte, 2)
	binary.BigEndian.PutUint16(p, port)
	redirect := []expr.Any{
		&expr.Immediate{Register: 1, Data: p},
		&expr.Redir{RegisterProtoMin: 1, RegisterProtoMax: 1, Flags: unix.NF_NAT_RANGE_PROTO_SPECIFIED},
	}
	accept := &expr.Verdict{Kind: expr.VerdictAccept}

	nat = append(nat, concat(l4(unix.IPPROTO_TCP), v4Loopback(expr.CmpOpNeq), redirect))
	if v6 {
		nat = append(nat, concat(l4(unix.IPPROTO_TCP), v6Loopback(expr.CmpOpNeq), redirect))
	}
	filter = [][]expr.Any{
		concat(l4(unix.IPPROTO_TCP), []expr.Any{accept}),
		concat(v4Loopback(expr.CmpOpEq), []expr.Any{accept}),
		concat(v6Loopback(expr.CmpOpEq), []expr.Any{accept}),
		concat(l4(unix.IPPROTO_ICMP), thByte(0, expr.CmpOpNeq, 8), []expr.Any{accept}),
		concat(l4(unix.IPPROTO_ICMPV6), thByte(0, expr.CmpOpNeq, 128), []expr.Any{accept}),
		{
			// queue-threshold 1: hand each packet to the gateway at once
			// instead of batching for up to a second.
			&expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_QTHRESHOLD, Group: group, QThreshold: 1},
			&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH},
		},
	}
	return nat, filter
}

func concat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func l4(proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
}

func nfproto(family byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{family}},
	}
}

// v4Loopback matches (or, with CmpOpNeq, excludes) IPv4 destinations in
// 127.0.0.0/8.
func v4Loopback(op expr.CmpOp) []expr.Any {
	return concat(nfproto(unix.NFPROTO_IPV4), []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 1},
		&expr.Cmp{Op: op, Register: 1, Data: []byte{127}},
	})
}

// v6Loopback matches (or excludes) the IPv6 destination ::1.
func v6Loopback(op expr.CmpOp) []expr.Any {
	return concat(nfproto(unix.NFPROTO_IPV6), []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16},
		&expr.Cmp{Op: op, Register: 1, Data: net.IPv6loopback},
	})
}

func thByte(off uint32, op expr.CmpOp, v byte) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 1},
		&expr.Cmp{Op: op, Register: 1, Data: []byte{v}},
	}
}

// programRules replaces the gateway's table in the namespace fd in one
// netlink transaction.
func programRules(fd int, port uint16, v6 bool, group uint16) error {
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		return err
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
	for _, old := range tables {
		if old.Name == TableName {
			c.DelTable(old)
		}
	}
	c.AddTable(t)
	accept := nftables.ChainPolicyAccept
	natChain := c.AddChain(&nftables.Chain{
		Name: "nat-out", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest, Policy: &accept,
	})
	filterChain := c.AddChain(&nftables.Chain{
		Name: "filter-out", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Policy: &accept,
	})
	nat, filter := ruleSpec(port, v6, group)
	for _, e := range nat {
		c.AddRule(&nftables.Rule{Table: t, Chain: natChain, Exprs: e})
	}
	for _, e := range filter {
		c.AddRule(&nftables.Rule{Table: t, Chain: filterChain, Exprs: e})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("program table %s: %w", TableName, err)
	}
	return nil
}
