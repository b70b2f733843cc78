package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berth/berth"
)

// Container actions accepted by Do.
const (
	ActionStart   = "start"
	ActionStop    = "stop"
	ActionRestart = "restart"
	ActionRemove  = "remove"
)

// ValidateAction reports whether a is a known container action.
func ValidateAction(a string) error {
	switch a {
	case ActionStart, ActionStop, ActionRestart, ActionRemove:
		return nil
	}
	return berth.Errorf(berth.ErrInvalid, "unknown action %q (want start, stop, restart or remove)", a)
}

// Default returns the user's default container record. ErrNotFound when the
// user does not exist (message "unknown user") or has no container.
func (m *Manager) Default(ctx context.Context, userID string) (berth.Container, error) {
	if err := berth.ValidateUserID(userID); err != nil {
		return berth.Container{}, err
	}
	c, err := m.store.GetContainer(ctx, berth.ContainerName(m.cfg.Instance, userID, 1))
	if errors.Is(err, berth.ErrNotFound) {
		if _, uerr := m.store.GetUser(ctx, userID); errors.Is(uerr, berth.ErrNotFound) {
			return berth.Container{}, berth.Errorf(berth.ErrNotFound, "unknown user %q", userID)
		}
		return berth.Container{}, berth.Errorf(berth.ErrNotFound, "user %q has no container", userID)
	}
	return c, err
}

// Do runs a container action on the user's default container.
func (m *Manager) Do(ctx context.Context, userID, action string) (berth.Container, error) {
	if err := ValidateAction(action); err != nil {
		return berth.Container{}, err
	}
	if err := berth.ValidateUserID(userID); err != nil {
		return berth.Container{}, err
	}
	unlock := m.users.Lock(userID)
	defer unlock()
	c, err := m.Default(ctx, userID)
	if err != nil {
		return berth.Container{}, err
	}
	ctx = context.WithoutCancel(ctx)
	m.activity.Touch(c.Name)
	switch action {
	case ActionStart, ActionRestart:
		// A user or admin acting clears a crash loop and its reason.
		m.crashes.clear(c.Name)
		c.LastError = ""
		if c.Status == berth.StatusCreating {
			if c, err = m.finish(ctx, c); err != nil {
				return berth.Container{}, err
			}
			return c, nil
		}
		if action == ActionStart {
			return m.start(ctx, c, berth.EventStarted, "requested")
		}
		return m.restart(ctx, c, "requested")
	case ActionStop:
		return m.stop(ctx, c, "requested")
	default:
		// The volume (the ledger) is kept: a container made again for the
		// user continues its history and its day's quota (docs/API.md).
		if err := m.destroy(ctx, c, false); err != nil {
			return berth.Container{}, err
		}
		m.appendLog(ctx, c, berth.EventRemoved, "requested")
		m.crashes.clear(c.Name)
		m.activity.Forget(c.Name)
		m.changed()
		c.Status = "removed"
		return c, nil
	}
}

// EnsureRunning is wake on request: it returns the user's default
// container running and healthy, starting (or re-creating) it first when it
// is stopped or missing, and counts the call as activity. Concurrent callers
// queue on the user's lock: the first wakes the container, the others find
// it running. A failed container is not woken (ErrConflict naming why): it
// stays stopped until a user or admin starts it.
func (m *Manager) EnsureRunning(ctx context.Context, userID string) (berth.Container, error) {
	if err := berth.ValidateUserID(userID); err != nil {
		return berth.Container{}, err
	}
	unlock := m.users.Lock(userID)
	defer unlock()
	c, err := m.Default(ctx, userID)
	if err != nil {
		return berth.Container{}, err
	}
	m.activity.Touch(c.Name)
	switch c.Status {
	case berth.StatusFailed:
		return berth.Container{}, berth.Errorf(berth.ErrConflict,
			"container %s is failed (%s); start it to try again", c.Name, c.LastError)
	case berth.StatusCreating:
		return m.finish(context.WithoutCancel(ctx), c)
	}
	inst, err := m.driver.Inspect(ctx, c.Name)
	switch {
	case err == nil && inst.Running && c.Status == berth.StatusRunning:
		return c, nil
	case errors.Is(err, berth.ErrNotFound):
		return m.recreate(context.WithoutCancel(ctx), c, true, "woken on request; it was missing from the engine")
	}
	return m.start(context.WithoutCancel(ctx), c, berth.EventStarted, "woken on request")
}

func (m *Manager) start(ctx context.Context, c berth.Container, event, reason string) (berth.Container, error) {
	if c.Status == berth.StatusCreating {
		return berth.Container{}, berth.Errorf(berth.ErrConflict, "container %s is still being created", c.Name)
	}
	if err := m.driver.Start(ctx, c.Name); err != nil {
		if errors.Is(err, berth.ErrNotFound) {
			return m.recreate(ctx, c, true, reason+"; it was missing from the engine")
		}
		return berth.Container{}, fmt.Errorf("start %s: %w", c.Name, err)
	}
	return m.markRunning(ctx, c, event, reason)
}

// markRunning waits for the agent to answer, hands it the record's quota
// (the record, not the container's environment, is authoritative after a
// live plan change) and records the container running. LastError is kept:
// it is the last failure reason, cleared only when a user acts.
func (m *Manager) markRunning(ctx context.Context, c berth.Container, event, reason string) (berth.Container, error) {
	if err := m.waitHealthy(ctx, c); err != nil {
		c.Health, c.LastError = "unhealthy", berth.ErrorMessage(err)
		c.UpdatedAt = time.Now().UTC()
		_ = m.store.UpdateContainer(ctx, c)
		return berth.Container{}, err
	}
	m.pushQuota(ctx, c)
	now := time.Now().UTC()
	c.Status, c.Health = berth.StatusRunning, "healthy"
	c.StartedAt, c.UpdatedAt = now, now
	if err := m.store.UpdateContainer(ctx, c); err != nil {
		return berth.Container{}, fmt.Errorf("record %s: %w", c.Name, err)
	}
	m.appendLog(ctx, c, event, reason)
	m.changed()
	return c, nil
}

func (m *Manager) stop(ctx context.Context, c berth.Container, reason string) (berth.Container, error) {
	if err := m.driver.Stop(ctx, c.Name, m.cfg.StopTimeout); err != nil {
		return berth.Container{}, fmt.Errorf("stop %s: %w", c.Name, err)
	}
	c.Status, c.Health = berth.StatusStopped, "unknown"
	c.UpdatedAt = time.Now().UTC()
	if err := m.store.UpdateContainer(ctx, c); err != nil {
		return berth.Container{}, fmt.Errorf("record %s: %w", c.Name, err)
	}
	if reason != "" {
		m.appendLog(ctx, c, berth.EventStopped, reason)
	}
	m.changed()
	return c, nil
}

func (m *Manager) restart(ctx context.Context, c berth.Container, reason string) (berth.Container, error) {
	if err := m.driver.Restart(ctx, c.Name, m.cfg.StopTimeout); err != nil {
		if errors.Is(err, berth.ErrNotFound) {
			return m.recreate(ctx, c, true, reason+"; it was missing from the engine")
		}
		return berth.Container{}, fmt.Errorf("restart %s: %w", c.Name, err)
	}
	return m.markRunning(ctx, c, berth.EventRestarted, reason)
}

// Observed is a container record with what the engine says of it now.
type Observed struct {
	berth.Container
	Instance     *berth.Instance // nil when the engine has no such container
	Usage        *berth.Usage    // set when asked for and running
	LastActivity time.Time       // zero when none was seen since this control plane started
	IdleStopAt   time.Time       // when an idle stop will happen; zero: never (plan, or not running)
	Restarts     int             // automatic restarts within the crash window
}

// Observe returns the record with the engine's view of it. It changes no
// record: the record is the desired state, which only the lifecycle
// operations and the reconciler change. A container that died behind
// Berth's back is shown "restarting" with the reason, and handed to the
// reconciler at once.
func (m *Manager) Observe(ctx context.Context, c berth.Container, withUsage bool) (Observed, error) {
	o := Observed{Container: c}
	m.viewActivity(&o)
	inst, err := m.driver.Inspect(ctx, c.Name)
	switch {
	case errors.Is(err, berth.ErrNotFound):
		if c.Status != berth.StatusCreating {
			m.noteDrift(c.Name)
		}
		return o, nil
	case err != nil:
		return o, err
	}
	o.Instance = &inst
	if wantsRunning(c.Status) && !inst.Running && inst.State != "restarting" {
		o.Container.Status, o.Container.Health = berth.StatusRestarting, "unhealthy"
		o.Container.LastError = exitReason(inst)
		m.noteDrift(c.Name)
	}
	if withUsage && inst.Running {
		if u, err := m.driver.Stats(ctx, c.Name); err == nil {
			o.Usage = &u
		}
	}
	return o, nil
}

// List returns every container record (of one user when userID is set).
func (m *Manager) List(ctx context.Context, userID string) ([]berth.Container, error) {
	return m.store.ListContainers(ctx, userID)
}

// Logs returns the tail of a user's default container's output.
func (m *Manager) Logs(ctx context.Context, userID string, tail int) (string, error) {
	c, err := m.Default(ctx, userID)
	if err != nil {
		return "", err
	}
	logs, err := m.driver.Logs(ctx, c.Name, tail)
	if errors.Is(err, berth.ErrNotFound) {
		return "", nil
	}
	return logs, err
}

// Ping reports whether the engine answers.
func (m *Manager) Ping(ctx context.Context) error { return m.driver.Ping(ctx) }
