package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"

	"github.com/berth/berth"
)

// classify maps an error from the Docker SDK into one of berth's kinds.
// op is a lowercase verb phrase ("start container x") that becomes the
// caller-safe message; the engine's own text is kept as the cause.
func (d *Driver) classify(err error, op string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", op, err)
	case client.IsErrConnectionFailed(err):
		return berth.Wrap(berth.ErrUnavailable, err, fmt.Sprintf("%s: docker engine unreachable at %s", op, d.cli.DaemonHost()))
	case cerrdefs.IsNotFound(err):
		return berth.Wrap(berth.ErrNotFound, err, op+": not found")
	case cerrdefs.IsConflict(err), cerrdefs.IsAlreadyExists(err):
		return berth.Wrap(berth.ErrConflict, err, op+": conflict")
	case cerrdefs.IsInvalidArgument(err):
		return berth.Wrap(berth.ErrInvalid, err, op+": refused by the engine")
	case cerrdefs.IsUnavailable(err):
		return berth.Wrap(berth.ErrUnavailable, err, op+": docker engine unavailable")
	case strings.Contains(err.Error(), "address already in use"):
		// The published agent port is taken on the host: the caller should
		// pick another port, so this is a conflict rather than an internal error.
		return berth.Wrap(berth.ErrConflict, err, op+": agent port already in use on the host")
	}
	return fmt.Errorf("%s: %w", op, err)
}

func isNotFound(err error) bool { return err != nil && cerrdefs.IsNotFound(err) }
func isConflict(err error) bool { return err != nil && cerrdefs.IsConflict(err) }

// isRemovalInProgress reports the engine's answer to removing a container
// that is already being removed: it will be gone shortly, which is what the
// caller wants.
func isRemovalInProgress(err error) bool {
	return err != nil && strings.Contains(err.Error(), "is already in progress")
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
