// Package errdefs holds the small set of error categories Cortex uses
// everywhere, and the one place they are mapped to HTTP status codes and
// process exit codes. It must not import any other Cortex package.
package errdefs

import (
	"errors"
	"fmt"
	"net/http"
)

// Category is one of a fixed set of error kinds. Errors are wrapped with a
// category at their origin and branched on with Is*.
type Category string

const (
	NotFound           Category = "not found"
	InvalidArgument    Category = "invalid argument"
	AlreadyExists      Category = "already exists"
	FailedPrecondition Category = "failed precondition"
	Unavailable        Category = "unavailable"
	PermissionDenied   Category = "permission denied"
	Unsupported        Category = "unsupported"
	Internal           Category = "internal"
	// Unauthenticated: the caller did not prove who it is (no, a bad, an
	// expired or a revoked credential).
	Unauthenticated Category = "unauthenticated"
	// RateLimited: the caller sent more requests than its role allows;
	// it may retry later (the API says when).
	RateLimited Category = "rate limited"
)

// Error carries a category, a message and an optional hint for the user
// ("Try: ..."). It wraps an underlying error when there is one.
type Error struct {
	Cat  Category
	Msg  string
	Hint string
	Err  error
}

func (e *Error) Error() string {
	switch {
	case e.Msg != "" && e.Err != nil:
		return e.Msg + ": " + e.Err.Error()
	case e.Msg != "":
		return e.Msg
	case e.Err != nil:
		return e.Err.Error()
	}
	return string(e.Cat)
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an error of category c with a formatted message.
func New(c Category, format string, args ...any) error {
	return &Error{Cat: c, Msg: fmt.Sprintf(format, args...)}
}

// Wrap gives err category c, keeping its message.
func Wrap(c Category, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Cat: c, Err: err}
}

// WithHint attaches a user-facing hint to err, keeping its category.
func WithHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &Error{Cat: CategoryOf(err), Err: err, Hint: hint}
}

// CategoryOf returns the outermost category found in err's chain, or
// Internal when none is set.
func CategoryOf(err error) Category {
	var e *Error
	for err != nil {
		if errors.As(err, &e) {
			if e.Cat != "" {
				return e.Cat
			}
			err = e.Err
			continue
		}
		break
	}
	return Internal
}

// HintOf returns the first hint found in err's chain.
func HintOf(err error) string {
	var e *Error
	for err != nil && errors.As(err, &e) {
		if e.Hint != "" {
			return e.Hint
		}
		err = e.Err
	}
	return ""
}

func IsNotFound(err error) bool           { return CategoryOf(err) == NotFound }
func IsInvalidArgument(err error) bool    { return CategoryOf(err) == InvalidArgument }
func IsAlreadyExists(err error) bool      { return CategoryOf(err) == AlreadyExists }
func IsFailedPrecondition(err error) bool { return CategoryOf(err) == FailedPrecondition }
func IsUnavailable(err error) bool        { return CategoryOf(err) == Unavailable }
func IsPermissionDenied(err error) bool   { return CategoryOf(err) == PermissionDenied }
func IsUnsupported(err error) bool        { return CategoryOf(err) == Unsupported }
func IsUnauthenticated(err error) bool    { return CategoryOf(err) == Unauthenticated }
func IsRateLimited(err error) bool        { return CategoryOf(err) == RateLimited }

// HTTPStatus maps a category to the status code the API answers with.
func HTTPStatus(c Category) int {
	switch c {
	case NotFound:
		return http.StatusNotFound
	case InvalidArgument:
		return http.StatusBadRequest
	case AlreadyExists:
		return http.StatusConflict
	case FailedPrecondition:
		return http.StatusPreconditionFailed
	case Unavailable:
		return http.StatusServiceUnavailable
	case PermissionDenied:
		return http.StatusForbidden
	case Unsupported:
		return http.StatusNotImplemented
	case Unauthenticated:
		return http.StatusUnauthorized
	case RateLimited:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

// Exit codes of the CLI: 0 success, 1 runtime error, 2 invalid input.
const (
	ExitOK      = 0
	ExitRuntime = 1
	ExitInvalid = 2
)

// ExitCode maps an error to the CLI's exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	if CategoryOf(err) == InvalidArgument {
		return ExitInvalid
	}
	return ExitRuntime
}
