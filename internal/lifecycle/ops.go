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
	unlock, err := m.lockUser(ctx, userID)
	if err != nil {
		return berth.Container{}, err
	}
	defer unlock()
	c, err := m.Default(ctx, userID)
	if err != nil {
		return berth.Container{}, err
	}
	ctx = context.WithoutCancel(ctx)
	switch action {
	case ActionStart:
		return m.start(ctx, c, berth.EventStarted, "requested")
	case ActionStop:
		return m.stop(ctx, c, "requested")
	case ActionRestart:
		return m.restart(ctx, c, "requested")
	default:
		if err := m.destroy(ctx, c, true); err != nil {
			return berth.Container{}, err
		}
		m.appendLog(ctx, c, berth.EventRemoved, "requested")
		m.changed()
		c.Status = "removed"
		return c, nil
	}
}

// EnsureRunning starts the user's default container if it is not running.
func (m *Manager) EnsureRunning(ctx context.Context, userID string) (berth.Container, error) {
	unlock, err := m.lockUser(ctx, userID)
	if err != nil {
		return berth.Container{}, err
	}
	defer unlock()
	c, err := m.Default(ctx, userID)
	if err != nil {
		return berth.Container{}, err
	}
	inst, err := m.driver.Inspect(ctx, c.Name)
	if err == nil && inst.Running && c.Status == berth.StatusRunning {
		return c, nil
	}
	return m.start(context.WithoutCancel(ctx), c, berth.EventStarted, "automation start")
}

func (m *Manager) start(ctx context.Context, c berth.Container, event, reason string) (berth.Container, error) {
	if c.Status == berth.StatusCreating {
		return berth.Container{}, berth.Errorf(berth.ErrConflict, "container %s is still being created", c.Name)
	}
	if err := m.driver.Start(ctx, c.Name); err != nil {
		if errors.Is(err, berth.ErrNotFound) {
			return berth.Container{}, berth.Errorf(berth.ErrUnavailable, "container %s is missing from the engine", c.Name)
		}
		return berth.Container{}, fmt.Errorf("start %s: %w", c.Name, err)
	}
	return m.markRunning(ctx, c, event, reason)
}

func (m *Manager) markRunning(ctx context.Context, c berth.Container, event, reason string) (berth.Container, error) {
	if err := m.waitHealthy(ctx, c); err != nil {
		c.Health, c.LastError = "unhealthy", berth.ErrorMessage(err)
		c.UpdatedAt = time.Now().UTC()
		_ = m.store.UpdateContainer(ctx, c)
		return berth.Container{}, err
	}
	now := time.Now().UTC()
	c.Status, c.Health, c.LastError = berth.StatusRunning, "healthy", ""
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
	m.appendLog(ctx, c, berth.EventStopped, reason)
	m.changed()
	return c, nil
}

func (m *Manager) restart(ctx context.Context, c berth.Container, reason string) (berth.Container, error) {
	if err := m.driver.Restart(ctx, c.Name, m.cfg.StopTimeout); err != nil {
		if errors.Is(err, berth.ErrNotFound) {
			return berth.Container{}, berth.Errorf(berth.ErrUnavailable, "container %s is missing from the engine", c.Name)
		}
		return berth.Container{}, fmt.Errorf("restart %s: %w", c.Name, err)
	}
	return m.markRunning(ctx, c, berth.EventRestarted, reason)
}

// Observed is a container record with what the engine says of it now.
type Observed struct {
	berth.Container
	Instance *berth.Instance // nil when the engine has no such container
	Usage    *berth.Usage    // set when asked for and running
}

// Observe returns the record refreshed with the engine's view. A container
// that stopped behind Berth's back is recorded as stopped, with a "died"
// lifecycle event carrying its exit code (and OOM kill).
func (m *Manager) Observe(ctx context.Context, c berth.Container, withUsage bool) (Observed, error) {
	o := Observed{Container: c}
	inst, err := m.driver.Inspect(ctx, c.Name)
	switch {
	case errors.Is(err, berth.ErrNotFound):
		return o, nil
	case err != nil:
		return o, err
	}
	o.Instance = &inst
	if c.Status == berth.StatusRunning && !inst.Running && inst.State != "restarting" {
		reason := fmt.Sprintf("exit code %d", inst.ExitCode)
		if inst.OOMKilled {
			reason = "OOM-killed"
		}
		c.Status, c.Health, c.LastError = berth.StatusStopped, "unknown", reason
		c.UpdatedAt = time.Now().UTC()
		if err := m.store.UpdateContainer(ctx, c); err == nil {
			m.appendLog(ctx, c, berth.EventDied, reason)
			m.changed()
		}
		o.Container = c
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
