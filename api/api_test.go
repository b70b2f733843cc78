package api

import (
	"errors"
	"net/http"
	"testing"

	"github.com/berth/berth"
)

// TestErrorKindsRoundTrip: every kind maps to a status and a code, and the
// code maps back to the kind (clients use errors.Is on API errors).
func TestErrorKindsRoundTrip(t *testing.T) {
	t.Parallel()
	for kind, status := range map[error]int{
		berth.ErrInvalid: 400, berth.ErrUnauthorized: 401, berth.ErrForbidden: 403, berth.ErrNotFound: 404,
		berth.ErrConflict: 409, berth.ErrTooLarge: 413, berth.ErrQuota: 429, berth.ErrCapacity: 503, berth.ErrUnavailable: 503,
	} {
		err := berth.Errorf(kind, "x")
		if got := HTTPStatus(err); got != status {
			t.Errorf("%v → %d, want %d", kind, got, status)
		}
		if back := KindOf(berth.ErrorCode(err)); back != kind {
			t.Errorf("code %q maps back to %v, want %v", berth.ErrorCode(err), back, kind)
		}
	}
	if HTTPStatus(errors.New("bug")) != http.StatusInternalServerError {
		t.Error("unknown errors must be 500")
	}
	if b := ErrorBodyOf(berth.Wrap(berth.ErrUnavailable, errors.New("secret detail"), "engine down")); b.Error.Message != "engine down" || b.Error.Code != "unavailable" {
		t.Errorf("body = %+v", b)
	}
}
