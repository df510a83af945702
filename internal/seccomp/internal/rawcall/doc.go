// Package rawcall makes system calls through entry points Go cannot reach on
// its own, for the seccomp package's kernel tests: the i386 int $0x80 gate
// from a 64-bit process, and a raw fork-style clone with caller-chosen flags
// whose child exits at once. It must not be used outside tests.
package rawcall
