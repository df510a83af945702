// Package egresstest has helpers for tests that drive the egress gateway
// against the real kernel: a throwaway network namespace with a dialer and a
// process launcher inside it, a fake upstream DNS server that records every
// query, and a test certificate authority. It must only be imported by
// tests. Everything here that touches namespaces is Linux-only.
package egresstest
