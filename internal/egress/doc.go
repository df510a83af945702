// Package egress owns the egress gateway: the only way an agent's traffic
// leaves its network namespace. For each agent the daemon calls
// Gateway.ServeNetns with the agent's netns; the gateway then serves, inside that
// namespace (sockets opened from a thread that entered it), three things:
//
//   - a DNS resolver on 127.0.0.1:53 (udp and tcp) that answers A queries for
//     allowed names with a synthetic address from 198.18.0.0/15 (RFC 2544),
//     per namespace, that the gateway maps back to the name. It never asks
//     any upstream at DNS time, so queries for unlisted names (DNS tunnelling)
//     reach nobody. AAAA and every other type for an allowed name get an empty
//     NOERROR answer, so clients use IPv4. A name that is not allowed gets
//     NXDOMAIN (with an RFC 8914 "Prohibited" extended error when the client
//     speaks EDNS): final and fast in every client library, where REFUSED
//     makes glibc retry and report a "temporary failure".
//   - a transparent TCP path: nftables rules (programmed over netlink inside
//     the namespace) redirect every TCP connection to a non-loopback address
//     to one gateway listener; a "local default" route makes every address
//     routable first. The listener reads the original destination
//     (SO_ORIGINAL_DST), maps a synthetic address back to its name, checks
//     name:port against the policy, checks the TLS SNI (the ClientHello is
//     peeked, TLS is never terminated) or the HTTP Host of the first request
//     against that name, then resolves the name, refuses addresses it must
//     never dial, dials from the daemon's (host) namespace and splices bytes
//     both ways with half-close.
//   - an HTTP proxy on 127.0.0.1:3128 (HTTP_PROXY/HTTPS_PROXY, see
//     Netns.Env) that enforces the same policy: CONNECT host:port is
//     checked and so is the SNI or Host inside the tunnel; absolute-URI
//     requests are checked by host and forwarded.
//
// Everything else is refused fast and reported once through
// NetnsOptions.OnDeny: unlisted names (NXDOMAIN), literal addresses and
// ports not granted (TCP reset), UDP other than DNS to the resolver and any
// other IP protocol (the nftables rule rejects the packet, so the sender gets
// EPERM or ECONNREFUSED at once, and logs it to NFLOG, which the gateway
// reads).
//
// Policy: network.access entries are exact names ("api.example.com"),
// wildcards ("*.example.org" matches names strictly below example.org, not
// example.org itself) and single-label service names ("ice-kernel"). A bare
// name allows every TCP port (the seed reaches "ice-kernel" on port 8000);
// "name:port" narrows that name to the listed ports.
//
// Addresses: the gateway never dials loopback, private (RFC 1918, 100.64/10,
// fc00::/7), link-local (169.254/16 with the metadata address, fe80::/10),
// multicast, unspecified, broadcast or other special-purpose ranges, nor
// IPv4-mapped, NAT64 or 6to4 forms of them. It checks the address it actually
// dials. The only exception is Config.Hosts (the daemon's egress.hosts),
// which pins a name to an address; a manifest can never do that.
//
// Internal names (Gateway.RegisterInternal, e.g. llm.cortex.internal) route
// to an in-daemon dial function instead of the internet, for the agents the
// daemon enables them for; network.access can never grant them.
//
// Limits, by design: SNI and Host are checked on the first ClientHello or
// request of a stream (whenever it arrives; waiting does not skip the
// check), not on later keep-alive requests, HTTP/2 streams or an ECH inner
// hello. The destination is always the allowed name's own addresses, so
// these can reach only other virtual hosts of a server the agent may
// already reach. Synthetic mappings live as long as the namespace; keep
// Netns.Mappings across a daemon restart and pass them back as
// NetnsOptions.Restore.
//
// This package must not create or destroy agent namespaces (the sandbox
// does; Probe makes a throwaway one), must not read the daemon config file
// (it is given a Config) and must never run the nft or ip binaries: it
// programs the kernel over netlink.
package egress
