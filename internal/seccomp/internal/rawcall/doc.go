// Package rawcall makes system calls through entry points Go cannot reach on
// its own, for the seccomp package's kernel tests: a raw fork-style clone
// with caller-chosen flags whose child exits at once. (The i386 int $0x80
// gate is kerneltest.I386Gate: a call there may be killed by SIGSEGV, which
// cgo code cannot survive.) It must not be used outside tests.
package rawcall
