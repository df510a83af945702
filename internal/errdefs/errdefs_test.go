package errdefs

import (
	"fmt"
	"net/http"
	"testing"
)

func TestCategoryThroughWrapping(t *testing.T) {
	base := New(NotFound, "agent %q", "x")
	wrapped := fmt.Errorf("kill: %w", base)
	if !IsNotFound(wrapped) {
		t.Fatalf("IsNotFound(%v) = false", wrapped)
	}
	hinted := WithHint(wrapped, "run cortex list")
	if CategoryOf(hinted) != NotFound || HintOf(hinted) != "run cortex list" {
		t.Fatalf("hint lost category or hint: %v %q", CategoryOf(hinted), HintOf(hinted))
	}
	if CategoryOf(fmt.Errorf("plain")) != Internal {
		t.Fatal("plain error must be Internal")
	}
}

// TestHTTPStatus checks that each category has its own status (the API
// body names the category; the status is for HTTP tools).
func TestHTTPStatus(t *testing.T) {
	seen := map[int]Category{}
	for _, c := range []Category{NotFound, InvalidArgument, AlreadyExists, FailedPrecondition, Unavailable, PermissionDenied, Unsupported, Internal, Unauthenticated, RateLimited} {
		s := HTTPStatus(c)
		if other, dup := seen[s]; dup {
			t.Errorf("%s and %s both map to %d", c, other, s)
		}
		seen[s] = c
	}
	if HTTPStatus(Internal) != http.StatusInternalServerError {
		t.Error("internal must be 500")
	}
}

func TestExitCode(t *testing.T) {
	if ExitCode(nil) != 0 || ExitCode(New(InvalidArgument, "x")) != 2 || ExitCode(New(Unavailable, "x")) != 1 {
		t.Fatal("exit code mapping wrong")
	}
}
