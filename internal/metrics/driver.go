package metrics

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/berth/berth"
)

func itoa(n int) string { return strconv.Itoa(n) }

func errorf(msg string) error { return errors.New(msg) }

// Driver returns d instrumented: every call's latency by operation, and its
// errors by operation and berth error code. ErrNotFound is not an error
// here (Inspect of a removed container is routine).
func (m *Metrics) Driver(d berth.Driver) berth.Driver { return &driver{d: d, m: m} }

type driver struct {
	d berth.Driver
	m *Metrics
}

var _ berth.Driver = (*driver)(nil)

func (x *driver) observe(op string, start time.Time, err error) {
	x.m.engineLatency.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, berth.ErrNotFound) {
		x.m.engineErrors.WithLabelValues(op, berth.ErrorCode(err)).Inc()
	}
}

func (x *driver) Ping(ctx context.Context) error {
	start := time.Now()
	err := x.d.Ping(ctx)
	x.observe("ping", start, err)
	return err
}

func (x *driver) Host(ctx context.Context) (h berth.HostInfo, err error) {
	start := time.Now()
	h, err = x.d.Host(ctx)
	x.observe("host", start, err)
	return h, err
}

func (x *driver) Create(ctx context.Context, spec berth.ContainerSpec) (berth.Instance, error) {
	start := time.Now()
	in, err := x.d.Create(ctx, spec)
	x.observe("create", start, err)
	return in, err
}

func (x *driver) Start(ctx context.Context, name string) error {
	start := time.Now()
	err := x.d.Start(ctx, name)
	x.observe("start", start, err)
	if err == nil {
		x.m.mu.Lock()
		if len(x.m.starting) < 10000 { // bounded if a start never becomes healthy
			x.m.starting[name] = start
		}
		x.m.mu.Unlock()
	}
	return err
}

func (x *driver) Stop(ctx context.Context, name string, timeout time.Duration) error {
	start := time.Now()
	err := x.d.Stop(ctx, name, timeout)
	x.observe("stop", start, err)
	return err
}

func (x *driver) Restart(ctx context.Context, name string, timeout time.Duration) error {
	start := time.Now()
	err := x.d.Restart(ctx, name, timeout)
	x.observe("restart", start, err)
	if err == nil {
		x.m.mu.Lock()
		if len(x.m.starting) < 10000 {
			x.m.starting[name] = start
		}
		x.m.mu.Unlock()
	}
	return err
}

func (x *driver) Remove(ctx context.Context, name string, removeVolume bool) error {
	start := time.Now()
	err := x.d.Remove(ctx, name, removeVolume)
	x.observe("remove", start, err)
	x.m.mu.Lock()
	delete(x.m.starting, name)
	x.m.mu.Unlock()
	return err
}

func (x *driver) Inspect(ctx context.Context, name string) (berth.Instance, error) {
	start := time.Now()
	in, err := x.d.Inspect(ctx, name)
	x.observe("inspect", start, err)
	return in, err
}

func (x *driver) Logs(ctx context.Context, name string, tail int) (string, error) {
	start := time.Now()
	s, err := x.d.Logs(ctx, name, tail)
	x.observe("logs", start, err)
	return s, err
}

func (x *driver) Stats(ctx context.Context, name string) (berth.Usage, error) {
	start := time.Now()
	u, err := x.d.Stats(ctx, name)
	x.observe("stats", start, err)
	return u, err
}

func (x *driver) Update(ctx context.Context, name string, limits berth.Limits) error {
	start := time.Now()
	err := x.d.Update(ctx, name, limits)
	x.observe("update", start, err)
	return err
}

func (x *driver) List(ctx context.Context) ([]berth.Instance, error) {
	start := time.Now()
	l, err := x.d.List(ctx)
	x.observe("list", start, err)
	return l, err
}
