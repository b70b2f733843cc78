package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berth/berth"
	"github.com/berth/berth/api"
)

// repair is what one reconciliation step does to a container.
type repair int

const (
	repairNone     repair = iota
	repairFinish          // the record is stuck in "creating": a request crashed halfway
	repairRecreate        // the engine has no such container: make it again on its volume
	repairRestart         // it should run and does not: restart it (crash-loop policy applies)
	repairStop            // it should be stopped and runs: stop it
)

func (r repair) String() string {
	return [...]string{"none", "finish", "recreate", "restart", "stop"}[r]
}

// wantsRunning reports whether a recorded status means "keep it running".
func wantsRunning(status string) bool {
	return status == berth.StatusRunning || status == berth.StatusRestarting
}

// decide compares a record (desired) with what the engine has (observed,
// nil when it has nothing) and names the repair. It is pure, so the
// reconciler's rules are tested without an engine.
func decide(c berth.Container, inst *berth.Instance) repair {
	switch {
	case c.Status == berth.StatusCreating:
		return repairFinish
	case c.Status == berth.StatusRemoving:
		return repairNone
	case inst == nil:
		return repairRecreate
	case wantsRunning(c.Status) && !inst.Running && inst.State != "restarting":
		return repairRestart
	case !wantsRunning(c.Status) && inst.Running:
		return repairStop
	}
	return repairNone
}

// exitReason describes a container's death for the owner.
func exitReason(inst berth.Instance) string {
	switch {
	case inst.OOMKilled:
		return "OOM-killed"
	case inst.State == "created":
		return "never started"
	default:
		return fmt.Sprintf("exit code %d", inst.ExitCode)
	}
}

// Reconcile compares one container's record with the engine and repairs
// the difference: it finishes an interrupted creation, re-creates a
// container removed behind Berth's back (same name, plan, port, secret and
// volume), restarts a dead one under the crash-loop policy, or stops one
// that runs against its record. Each step is idempotent. It returns how
// soon to look again (0: at the next event or full pass), e.g. when a
// restart is backing off.
func (m *Manager) Reconcile(ctx context.Context, name string) (again time.Duration, err error) {
	c, err := m.store.GetContainer(ctx, name)
	if errors.Is(err, berth.ErrNotFound) {
		return 0, nil // unknown containers are the reconciler's orphans
	}
	if err != nil {
		return 0, err
	}
	unlock, err := m.lockUser(ctx, c.UserID)
	if err != nil {
		return 0, err
	}
	defer unlock()
	// Re-read under the lock: an operation that held it may have changed it.
	if c, err = m.store.GetContainer(ctx, name); errors.Is(err, berth.ErrNotFound) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	inst, err := m.inspect(ctx, name)
	if err != nil {
		return 0, err
	}
	r := decide(c, inst)
	if r == repairNone {
		return 0, nil
	}
	m.log.Info("reconcile", "container", name, "status", c.Status, "repair", r.String())
	if m.cfg.OnRepair != nil {
		m.cfg.OnRepair(r.String())
	}
	switch r {
	case repairFinish:
		_, err = m.finish(ctx, c)
		return 0, err
	case repairRecreate:
		_, err = m.recreate(ctx, c, wantsRunning(c.Status), "removed behind Berth's back")
		return 0, err
	case repairStop:
		return 0, m.driver.Stop(ctx, name, m.cfg.StopTimeout)
	}
	return m.restartDead(ctx, c, *inst)
}

// inspect returns the engine's view, nil when it has no such container.
func (m *Manager) inspect(ctx context.Context, name string) (*berth.Instance, error) {
	inst, err := m.driver.Inspect(ctx, name)
	if errors.Is(err, berth.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &inst, nil
}

// restartDead handles a container that should run and does not. Caller
// holds the user's lock.
func (m *Manager) restartDead(ctx context.Context, c berth.Container, inst berth.Instance) (time.Duration, error) {
	reason := exitReason(inst)
	now := time.Now()
	fresh := c.Status != berth.StatusRestarting || c.LastError != reason
	wait, n, failed := m.crashes.note(c.Name, inst.FinishedAt, now, m.policy())
	if failed {
		return 0, m.markFailed(ctx, c, fmt.Sprintf("crash loop: %d failures within %s, last: %s", n, m.cfg.CrashWindow, reason))
	}
	if fresh {
		c.Status, c.Health, c.LastError = berth.StatusRestarting, "unhealthy", reason
		c.UpdatedAt = now.UTC()
		if err := m.store.UpdateContainer(ctx, c); err != nil {
			return 0, fmt.Errorf("record %s: %w", c.Name, err)
		}
		m.appendLog(ctx, c, berth.EventDied, reason)
		m.changed()
	}
	if wait > 0 {
		m.log.Info("restart backing off", "container", c.Name, "failures", n, "wait", wait)
		return wait, nil
	}
	if err := m.driver.Start(ctx, c.Name); err != nil {
		return 0, fmt.Errorf("restart %s: %w", c.Name, err)
	}
	_, err := m.markRunning(ctx, c, berth.EventRestarted, "after "+reason)
	if err != nil {
		// It died again, or does not answer: the next look counts it.
		return m.policy().backoff(n + 1), err
	}
	return 0, nil
}

// markFailed stops a crash-looping container and records why; it stays
// stopped until a user or admin starts it.
func (m *Manager) markFailed(ctx context.Context, c berth.Container, reason string) error {
	if err := m.driver.Stop(ctx, c.Name, m.cfg.StopTimeout); err != nil {
		return fmt.Errorf("stop failed container %s: %w", c.Name, err)
	}
	c.Status, c.Health, c.LastError = berth.StatusFailed, "unhealthy", reason
	c.UpdatedAt = time.Now().UTC()
	if err := m.store.UpdateContainer(ctx, c); err != nil {
		return fmt.Errorf("record %s: %w", c.Name, err)
	}
	m.appendLog(ctx, c, berth.EventFailed, reason)
	m.changed()
	m.log.Warn("container failed", "container", c.Name, "reason", reason)
	return nil
}

// finish completes a creation that a crashed request left in "creating":
// it makes the container if the engine lacks it, starts it and waits for
// its agent. If it cannot be finished for a reason other than the engine
// being unreachable, it is cleaned up (container and record; the volume is
// kept). Caller holds the user's lock.
func (m *Manager) finish(ctx context.Context, c berth.Container) (berth.Container, error) {
	m.log.Warn("finishing an interrupted creation", "container", c.Name)
	cleanup := func(err error) (berth.Container, error) {
		if errors.Is(err, berth.ErrUnavailable) && m.driver.Ping(ctx) != nil {
			return berth.Container{}, err // try again when the engine is back
		}
		if derr := m.destroy(ctx, c, false); derr != nil {
			m.log.Error("clean up interrupted creation", "container", c.Name, "err", derr)
		}
		m.appendLog(ctx, c, berth.EventRemoved, "interrupted creation could not be finished")
		m.changed()
		return berth.Container{}, err
	}
	inst, err := m.inspect(ctx, c.Name)
	if err != nil {
		return berth.Container{}, err
	}
	if inst == nil {
		secrets, err := m.store.ContainerSecrets(ctx, c.Name)
		if err != nil {
			return berth.Container{}, err
		}
		made, err := m.driver.Create(ctx, m.spec(c, secrets))
		if err != nil {
			return cleanup(fmt.Errorf("create container %s: %w", c.Name, err))
		}
		c.RuntimeID = made.ID
		m.appendLog(ctx, c, berth.EventCreated, "plan "+c.Plan+" (finishing an interrupted creation)")
	} else {
		c.RuntimeID = inst.ID
	}
	if err := m.driver.Start(ctx, c.Name); err != nil {
		return cleanup(fmt.Errorf("start container %s: %w", c.Name, err))
	}
	out, err := m.markRunning(ctx, c, berth.EventStarted, "finished an interrupted creation")
	if err != nil {
		return cleanup(err)
	}
	return out, nil
}

// recreate makes a container again from its record — same name, plan,
// agent port, secret and extra environment — on its kept volume, so its
// ledger survives, and starts it when start is set. An existing container
// of that name is removed first (its volume stays). Caller holds the
// user's lock.
func (m *Manager) recreate(ctx context.Context, c berth.Container, start bool, reason string) (berth.Container, error) {
	secrets, err := m.store.ContainerSecrets(ctx, c.Name)
	if err != nil {
		return berth.Container{}, err
	}
	if err := m.driver.Remove(ctx, c.Name, false); err != nil {
		return berth.Container{}, fmt.Errorf("remove %s before re-creating it: %w", c.Name, err)
	}
	inst, err := m.driver.Create(ctx, m.spec(c, secrets))
	if err != nil {
		return berth.Container{}, fmt.Errorf("re-create %s: %w", c.Name, err)
	}
	c.RuntimeID = inst.ID
	c.UpdatedAt = time.Now().UTC()
	if !start {
		if wantsRunning(c.Status) {
			c.Status = berth.StatusStopped
		}
		c.Health = "unknown"
		if err := m.store.UpdateContainer(ctx, c); err != nil {
			return berth.Container{}, fmt.Errorf("record %s: %w", c.Name, err)
		}
		m.appendLog(ctx, c, berth.EventRecreated, reason)
		m.changed()
		return c, nil
	}
	if err := m.driver.Start(ctx, c.Name); err != nil {
		return berth.Container{}, fmt.Errorf("start %s: %w", c.Name, err)
	}
	return m.markRunning(ctx, c, berth.EventRecreated, reason)
}

// pushQuota hands the record's daily quota to the running agent (best
// effort: the environment carries the same value unless a live plan change
// happened since the container was made).
func (m *Manager) pushQuota(ctx context.Context, c berth.Container) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := m.Agent(c).SetLimits(ctx, api.LimitsRequest{ActionsPerDay: c.EffectiveLimits.ActionsPerDay}); err != nil {
		m.log.Warn("hand quota to agent", "container", c.Name, "err", err)
	}
}

// viewActivity fills the activity part of an observation.
func (m *Manager) viewActivity(o *Observed) {
	last, _ := m.activity.Last(o.Name)
	o.LastActivity = last
	o.Restarts = m.crashes.count(o.Name, time.Now(), m.cfg.CrashWindow)
	if o.Status != berth.StatusRunning {
		return
	}
	p, err := m.cfg.Plans.Get(o.Plan)
	if err != nil || p.IdleTimeout <= 0 {
		return
	}
	since, activeNow := m.activity.idleSince(o.Name, o.StartedAt)
	if activeNow {
		since = time.Now()
	}
	o.IdleStopAt = since.Add(p.IdleTimeout)
}

// Health checks.

// Probe asks a container's agent for /health once, within timeout.
func (m *Manager) Probe(ctx context.Context, c berth.Container, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := m.Agent(c).Health(ctx)
	return err
}

// SetHealth records a container's health when it changed (reason, when
// set, becomes its last error). A healthy
// container recorded "restarting" (an earlier restart's health wait gave
// up) is recorded running again.
func (m *Manager) SetHealth(ctx context.Context, name string, healthy bool, reason string) error {
	c, err := m.store.GetContainer(ctx, name)
	if err != nil {
		return err
	}
	unlock, err := m.lockUser(ctx, c.UserID)
	if err != nil {
		return err
	}
	defer unlock()
	if c, err = m.store.GetContainer(ctx, name); err != nil {
		return err
	}
	if !wantsRunning(c.Status) {
		return nil
	}
	h := "healthy"
	if !healthy {
		h = "unhealthy"
	}
	st := c.Status
	if healthy && st == berth.StatusRestarting {
		st = berth.StatusRunning
	}
	if h == c.Health && st == c.Status && (healthy || reason == "" || reason == c.LastError) {
		return nil
	}
	c.Health, c.Status = h, st
	if !healthy && reason != "" {
		c.LastError = reason
	}
	c.UpdatedAt = time.Now().UTC()
	if err := m.store.UpdateContainer(ctx, c); err != nil {
		return err
	}
	if !healthy && reason != "" {
		m.appendLog(ctx, c, berth.EventUnhealthy, reason)
	}
	m.changed()
	return nil
}

// RestartUnhealthy restarts a container whose agent failed its health
// checks; it counts as a death for the crash-loop policy.
func (m *Manager) RestartUnhealthy(ctx context.Context, name, reason string) error {
	c, err := m.store.GetContainer(ctx, name)
	if err != nil {
		return err
	}
	unlock, err := m.lockUser(ctx, c.UserID)
	if err != nil {
		return err
	}
	defer unlock()
	if c, err = m.store.GetContainer(ctx, name); err != nil {
		return err
	}
	if !wantsRunning(c.Status) {
		return nil
	}
	if inst, err := m.inspect(ctx, name); err != nil || inst == nil || !inst.Running {
		return err // dead or missing: Reconcile's job, not a health restart
	}
	now := time.Now()
	_, n, failed := m.crashes.note(name, now, now, m.policy())
	if failed {
		return m.markFailed(ctx, c, fmt.Sprintf("crash loop: %d failures within %s, last: %s", n, m.cfg.CrashWindow, reason))
	}
	c.LastError, c.Health = reason, "unhealthy"
	m.log.Warn("restarting unhealthy container", "container", name, "reason", reason)
	if err := m.driver.Restart(ctx, name, m.cfg.StopTimeout); err != nil {
		return fmt.Errorf("restart %s: %w", name, err)
	}
	_, err = m.markRunning(ctx, c, berth.EventRestarted, reason)
	return err
}

// Idle stop.

// IdleCandidate reports whether a container is due for an idle stop by its
// plan and the activity seen: running, with a plan idle timeout, and no
// activity for at least that long.
func (m *Manager) IdleCandidate(c berth.Container, now time.Time) bool {
	if c.Status != berth.StatusRunning {
		return false
	}
	p, err := m.cfg.Plans.Get(c.Plan)
	if err != nil || p.IdleTimeout <= 0 {
		return false
	}
	since, activeNow := m.activity.idleSince(c.Name, c.StartedAt)
	return !activeNow && now.Sub(since) >= p.IdleTimeout
}

// StopIdle stops a container that had no activity for its plan's idle
// timeout — unless its agent runs a workflow (which is activity) or
// activity arrived meanwhile. It reports whether it stopped it.
func (m *Manager) StopIdle(ctx context.Context, name string) (bool, error) {
	c, err := m.store.GetContainer(ctx, name)
	if err != nil {
		return false, err
	}
	if !m.IdleCandidate(c, time.Now()) {
		return false, nil
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	st, err := m.Agent(c).Status(sctx)
	cancel()
	if err == nil && (st.State == api.StateRunning || st.State == api.StateStopping) {
		m.activity.Touch(name)
		return false, nil
	}
	unlock, err := m.lockUser(ctx, c.UserID)
	if err != nil {
		return false, err
	}
	defer unlock()
	if c, err = m.store.GetContainer(ctx, name); err != nil {
		return false, err
	}
	if !m.IdleCandidate(c, time.Now()) {
		return false, nil
	}
	p, _ := m.cfg.Plans.Get(c.Plan)
	if _, err := m.stop(ctx, c, ""); err != nil {
		return false, err
	}
	m.appendLog(ctx, c, berth.EventIdle, fmt.Sprintf("no activity for %s", p.IdleTimeout))
	m.log.Info("stopped idle container", "container", name, "idle_timeout", p.IdleTimeout)
	return true, nil
}

// NeedsRepair reports whether a record and the engine's view of it (nil:
// the engine has none) differ in a way Reconcile repairs. It reads nothing,
// so a full pass can compare every tenant from one List.
func NeedsRepair(c berth.Container, inst *berth.Instance) bool {
	return decide(c, inst) != repairNone
}
