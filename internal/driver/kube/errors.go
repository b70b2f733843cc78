package kube

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/berth/berth"
)

// classify maps an error from client-go into one of berth's kinds. op is a
// lowercase verb phrase ("create statefulset x") that becomes the
// caller-safe message; the API server's own text is kept as the cause.
func (d *Driver) classify(err error, op string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", op, err)
	case isConnErr(err):
		return berth.Wrap(berth.ErrUnavailable, err, fmt.Sprintf("%s: kubernetes API server unreachable at %s", op, d.host))
	case apierrors.IsNotFound(err):
		return berth.Wrap(berth.ErrNotFound, err, op+": not found")
	case apierrors.IsAlreadyExists(err), apierrors.IsConflict(err):
		return berth.Wrap(berth.ErrConflict, err, op+": conflict")
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsRequestEntityTooLargeError(err):
		return berth.Wrap(berth.ErrInvalid, err, op+": refused by the API server")
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "exceeded quota"):
		return berth.Wrap(berth.ErrCapacity, err, op+": the namespace's resource quota is exhausted")
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		// An RBAC or credential problem of the operator, not of the tenant:
		// the cluster is unusable for this call.
		return berth.Wrap(berth.ErrUnavailable, err, op+": not permitted by the cluster (check the control plane's RBAC)")
	case apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), apierrors.IsServiceUnavailable(err),
		apierrors.IsTooManyRequests(err), apierrors.IsInternalError(err), apierrors.IsUnexpectedServerError(err):
		return berth.Wrap(berth.ErrUnavailable, err, op+": kubernetes API server unavailable")
	}
	return fmt.Errorf("%s: %w", op, err)
}

// isConnErr reports a transport failure: nothing answered at the API
// server's address.
func isConnErr(err error) bool {
	var ue *url.Error
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EHOSTUNREACH):
		return true
	case errors.As(err, &oe):
		return true
	case errors.As(err, &ne) && ne.Timeout():
		return true
	case errors.As(err, &ue):
		return true
	}
	s := err.Error()
	return strings.Contains(s, "connection refused") || strings.Contains(s, "no such host") || strings.Contains(s, "i/o timeout")
}
