// Package kerneltest gives tests one way to require root or a kernel feature.
// A missing requirement skips the test with the reason; when
// CORTEX_TEST_PRIVILEGED=1 (set by CI) it fails instead, so CI can never go
// green by skipping the tests that matter. It must only be imported by tests.
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

// RequireRoot needs euid 0.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "needs root (euid 0)")
	}
}

// Require needs a feature that probe reports present; a non-nil error from
// probe names what is missing.
func Require(t testing.TB, feature string, probe func() error) {
	t.Helper()
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
