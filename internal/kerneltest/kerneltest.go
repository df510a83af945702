// Package kerneltest gives tests one way to require root or a kernel feature.
// A missing requirement skips the test with the reason; when
// CORTEX_TEST_PRIVILEGED=1 (set by CI) it fails instead, so CI can never go
// green by skipping the tests that matter.
//
// go test -short (make test-short) means "no root, no kernel": RequireRoot
// and Require skip whatever the host has, so a short run touches no
// namespaces, cgroups, seccomp, Landlock or nftables and passes as an
// unprivileged user. It must only be imported by tests.
package kerneltest

import (
	"os"
	"testing"
)

// Privileged reports whether CORTEX_TEST_PRIVILEGED=1 is set.
func Privileged() bool { return os.Getenv("CORTEX_TEST_PRIVILEGED") == "1" }

// Missing skips (or, under CORTEX_TEST_PRIVILEGED=1, fails) t with why.
func Missing(t testing.TB, why string) {
	t.Helper()
	if Privileged() {
		t.Fatalf("required by CORTEX_TEST_PRIVILEGED=1 but missing: %s", why)
	}
	t.Skipf("skipping: %s", why)
}

// RequireRoot needs euid 0. Under -short it always skips.
func RequireRoot(t testing.TB) {
	t.Helper()
	skipShort(t, "needs root")
	if os.Geteuid() != 0 {
		Missing(t, "needs root (euid 0)")
	}
}

// Require needs a kernel feature that probe reports present; a non-nil
// error from probe names what is missing. Under -short it always skips.
func Require(t testing.TB, feature string, probe func() error) {
	t.Helper()
	skipShort(t, "needs "+feature)
	if err := probe(); err != nil {
		Missing(t, feature+": "+err.Error())
	}
}

// RequireFile needs path to exist (a kernel interface, a binary).
func RequireFile(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Missing(t, "needs "+path+": "+err.Error())
	}
}

func skipShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("skipping under -short (no root, no kernel): %s", why)
	}
}
