package docker

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/berth/berth"
)

var _ berth.EventSource = (*Driver)(nil)

// Events streams the engine's start, die, oom, stop and destroy events of
// this instance's containers. When the stream breaks (the engine restarts,
// ctx ends) the error channel delivers one error and both channels close.
func (d *Driver) Events(ctx context.Context) (<-chan berth.RuntimeEvent, <-chan error) {
	out := make(chan berth.RuntimeEvent, 64)
	errc := make(chan error, 1)
	f := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("label", berth.LabelInstance+"="+d.instance),
	)
	for _, a := range []string{berth.RuntimeStarted, berth.RuntimeDied, berth.RuntimeOOM, berth.RuntimeStopped, berth.RuntimeDestroyed} {
		f.Add("event", a)
	}
	msgs, errs := d.cli.Events(ctx, events.ListOptions{Filters: f})
	go func() {
		defer close(out)
		defer close(errc)
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					errc <- berth.Errorf(berth.ErrUnavailable, "docker event stream closed")
					return
				}
				ev := berth.RuntimeEvent{
					Name:   strings.TrimPrefix(m.Actor.Attributes["name"], "/"),
					Action: string(m.Action),
					Time:   time.Unix(0, m.TimeNano),
				}
				if c, err := strconv.Atoi(m.Actor.Attributes["exitCode"]); err == nil {
					ev.ExitCode = c
				}
				if ev.Name == "" {
					continue
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					errc <- ctx.Err()
					return
				}
			case err := <-errs:
				if ctx.Err() != nil {
					errc <- ctx.Err()
				} else {
					errc <- d.classify(err, "follow docker events")
				}
				return
			}
		}
	}()
	return out, errc
}
