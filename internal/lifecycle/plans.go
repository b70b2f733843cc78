package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berth/berth"
)

// PlanChange is the outcome of ChangePlan for one container.
type PlanChange struct {
	Container berth.Container
	Live      bool // limits were applied to the running container in place
	Recreated bool // the container was made again (on its volume) with the new limits
}

// ChangePlan moves a user to another plan: the user's record, each of their
// containers' limits, and their agents' daily quotas, at once. A running
// container gets the new memory, CPU (clamped to the host) and pids limits
// live; when the engine cannot apply them live, or the container is not
// running, or the plan's image differs, it is re-created with them on its
// volume (same name, port, secret and extra environment) and started again
// if it was running. A change the host cannot hold (capacity), or one to a
// plan that allows fewer containers than the user has, is refused before
// anything changes.
func (m *Manager) ChangePlan(ctx context.Context, userID, plan string) (berth.User, []PlanChange, error) {
	if err := berth.ValidateUserID(userID); err != nil {
		return berth.User{}, nil, err
	}
	p, err := m.cfg.Plans.Get(plan)
	if err != nil {
		return berth.User{}, nil, err
	}
	unlock := m.users.Lock(userID)
	defer unlock()
	u, err := m.store.GetUser(ctx, userID)
	if errors.Is(err, berth.ErrNotFound) {
		return berth.User{}, nil, berth.Errorf(berth.ErrNotFound, "unknown user %q", userID)
	}
	if err != nil {
		return berth.User{}, nil, err
	}
	cs, err := m.store.ListContainers(ctx, userID)
	if err != nil {
		return berth.User{}, nil, err
	}
	if len(cs) > p.ContainersPerUser {
		return berth.User{}, nil, berth.Errorf(berth.ErrConflict,
			"user %s has %d containers; plan %s allows %d: remove some first", userID, len(cs), p.Name, p.ContainersPerUser)
	}
	image, err := m.cfg.Image(ctx, p)
	if err != nil {
		return berth.User{}, nil, fmt.Errorf("tenant image: %w", err)
	}
	host, err := m.hostInfo(ctx)
	if err != nil {
		return berth.User{}, nil, err
	}
	eff := Effective(p.Limits(), host)

	// Capacity and the records change under the commit lock, so that no
	// creation sees the old figures meanwhile.
	m.commitMu.Lock()
	defer m.commitMu.Unlock()
	all, err := m.store.ListContainers(ctx, "")
	if err != nil {
		return berth.User{}, nil, fmt.Errorf("check capacity: %w", err)
	}
	var committed, delta int64
	for _, o := range all {
		committed += o.EffectiveLimits.MemoryBytes
		if o.UserID == userID {
			delta += eff.MemoryBytes - o.EffectiveLimits.MemoryBytes
		}
	}
	budget := int64(float64(host.MemoryBytes) * m.cfg.Overcommit)
	if delta > 0 && committed+delta > budget {
		return berth.User{}, nil, berth.Errorf(berth.ErrCapacity,
			"insufficient capacity: plan %s needs %s more memory, %s of %s is committed (host %s × overcommit %g)",
			p.Name, gib(delta), gib(committed), gib(budget), gib(host.MemoryBytes), m.cfg.Overcommit)
	}

	ctx = context.WithoutCancel(ctx) // a hang-up must not leave half the containers changed
	if err := m.store.UpdateUserPlan(ctx, userID, p.Name); err != nil {
		return berth.User{}, nil, fmt.Errorf("change plan of %s: %w", userID, err)
	}
	u.Plan = p.Name
	var out []PlanChange
	var errs []error
	for _, c := range cs {
		pc, err := m.applyPlan(ctx, c, p, image, eff)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, pc)
	}
	m.changed()
	return u, out, errors.Join(errs...)
}

// applyPlan gives one container a plan's limits. Caller holds the user's
// lock and the commit lock.
func (m *Manager) applyPlan(ctx context.Context, c berth.Container, p berth.Plan, image string, eff berth.Limits) (PlanChange, error) {
	old := c.Plan
	c.Plan, c.Limits, c.EffectiveLimits = p.Name, p.Limits(), eff
	c.UpdatedAt = time.Now().UTC()
	inst, err := m.inspect(ctx, c.Name)
	if err != nil {
		return PlanChange{}, err
	}
	reason := fmt.Sprintf("plan %s -> %s", old, p.Name)
	if c.Status != berth.StatusCreating && inst != nil && inst.Running && image == c.Image {
		if err := m.driver.Update(ctx, c.Name, eff); err == nil {
			if err := m.store.UpdateContainer(ctx, c); err != nil {
				return PlanChange{}, fmt.Errorf("record %s: %w", c.Name, err)
			}
			m.pushQuota(ctx, c)
			m.appendLog(ctx, c, berth.EventPlan, reason+" (live)")
			return PlanChange{Container: c, Live: true}, nil
		} else {
			m.log.Warn("live limit update refused; re-creating", "container", c.Name, "err", err)
		}
	}
	c.Image = image
	if c.Status == berth.StatusCreating {
		// Its creation finishes (reconciler) with the new record.
		if err := m.store.UpdateContainer(ctx, c); err != nil {
			return PlanChange{}, fmt.Errorf("record %s: %w", c.Name, err)
		}
		return PlanChange{Container: c}, nil
	}
	running := wantsRunning(c.Status)
	if err := m.store.UpdateContainer(ctx, c); err != nil {
		return PlanChange{}, fmt.Errorf("record %s: %w", c.Name, err)
	}
	m.appendLog(ctx, c, berth.EventPlan, reason+" (re-created)")
	nc, err := m.recreate(ctx, c, running, reason)
	if err != nil {
		return PlanChange{}, err
	}
	return PlanChange{Container: nc, Recreated: true}, nil
}
