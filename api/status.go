package api

import (
	"errors"
	"net/http"

	"github.com/berth/berth"
)

// HTTPStatus maps berth's error kinds to HTTP status codes. It is the one
// table both HTTP APIs (control plane and agent) answer errors with.
func HTTPStatus(err error) int {
	switch {
	case errors.Is(err, berth.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, berth.ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, berth.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, berth.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, berth.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, berth.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, berth.ErrQuota):
		return http.StatusTooManyRequests
	case errors.Is(err, berth.ErrCapacity), errors.Is(err, berth.ErrUnavailable):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// ErrorBodyOf returns the error shape for err, with a caller-safe message.
func ErrorBodyOf(err error) ErrorBody {
	return ErrorBody{Error: ErrorDetail{Code: berth.ErrorCode(err), Message: berth.ErrorMessage(err)}}
}
