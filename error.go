package berth

import (
	"errors"
	"fmt"
)

// Error kinds. Every adapter maps its backend's errors into one of these so
// that callers classify failures with errors.Is, and the HTTP layer maps them
// to status codes in exactly one place.
var (
	ErrInvalid      = errors.New("invalid argument")
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("conflict")
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
	ErrTooLarge     = errors.New("too large")
	ErrCapacity     = errors.New("insufficient capacity")
	ErrUnavailable  = errors.New("unavailable")
	ErrQuota        = errors.New("quota exceeded")
)

// Error is an error of a known kind with a message that is safe to show to
// the caller. Wrapped detail (the cause) is for logs only.
type Error struct {
	Kind    error  // one of the Err* kinds above
	Message string // safe to return to a tenant
	Cause   error  // optional detail; never shown to a tenant
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Message + ": " + e.Cause.Error()
	}
	return e.Message
}

// Unwrap lets errors.Is see both the kind and the cause.
func (e *Error) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Kind, e.Cause}
	}
	return []error{e.Kind}
}

// Errorf returns an *Error of the given kind with a formatted, caller-safe message.
func Errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error of the given kind whose message is safe to show and
// whose cause is kept for logs.
func Wrap(kind error, cause error, message string) error {
	return &Error{Kind: kind, Message: message, Cause: cause}
}

// ErrorCode returns the stable machine-readable code for err, as used in the
// API's error shape.
func ErrorCode(err error) string {
	switch {
	case errors.Is(err, ErrInvalid):
		return "invalid_argument"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrConflict):
		return "conflict"
	case errors.Is(err, ErrUnauthorized):
		return "unauthorized"
	case errors.Is(err, ErrForbidden):
		return "forbidden"
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrCapacity):
		return "insufficient_capacity"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	case errors.Is(err, ErrQuota):
		return "quota_exceeded"
	default:
		return "internal"
	}
}

// ErrorMessage returns the caller-safe message of err: the message of the
// outermost *Error, or a generic text for errors of unknown kind.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	if ErrorCode(err) == "internal" {
		return "internal error"
	}
	return err.Error()
}
