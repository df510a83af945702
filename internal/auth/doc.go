// Package auth is the API's security pipeline: who is asking
// (authentication: SO_PEERCRED on the unix socket, API keys and client
// certificates over TLS), what the request is (the typed request: route,
// class, target project and agent, decoded from path, query or body),
// whether it may (Authorize, the one decision, over role bindings
// limited to projects), how often (token buckets per identity), and the
// audit entry written before the answer leaves. The daemon wires it
// around its whole mux (Pipeline) and keeps it in no other place.
//
// It owns the API keys (stored as HMAC-SHA256 of their secrets) and the
// daemon's CA and the client certificates it issued, under
// var/lib/cortex/auth (0700, every file 0600). It must not import the
// daemon or any subsystem: it sees projects only through Projects.
package auth
