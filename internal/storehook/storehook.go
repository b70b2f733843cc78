// Package storehook decorates a berth.Store so that observers learn of
// lifecycle events and plan changes as they are recorded, whoever records
// them (lifecycle, ingester, reconciler). Hooks run after a successful write,
// on the writer's goroutine: they must not block (the metrics and webhook
// hooks only count or enqueue).
package storehook

import (
	"context"

	"github.com/berth/berth"
)

// Hooks are the observers. Either may be nil.
type Hooks struct {
	// OnLog is called after a lifecycle event was recorded.
	OnLog func(l berth.ContainerLog)
	// OnPlanChange is called after a user's plan changed from old to new.
	OnPlanChange func(userID, old, new string)
}

// Store is a berth.Store whose writes of lifecycle events and plans call
// Hooks. Every other method is the wrapped store's.
type Store struct {
	berth.Store
	hooks []Hooks
}

var _ berth.Store = (*Store)(nil)

// Wrap returns s decorated with hooks.
func Wrap(s berth.Store, hooks ...Hooks) *Store {
	return &Store{Store: s, hooks: hooks}
}

// AppendLog records l and then tells the hooks.
func (s *Store) AppendLog(ctx context.Context, l berth.ContainerLog) error {
	if err := s.Store.AppendLog(ctx, l); err != nil {
		return err
	}
	for _, h := range s.hooks {
		if h.OnLog != nil {
			h.OnLog(l)
		}
	}
	return nil
}

// UpdateUserPlan changes the plan and tells the hooks when it did change.
func (s *Store) UpdateUserPlan(ctx context.Context, id, plan string) error {
	old := ""
	if u, err := s.Store.GetUser(ctx, id); err == nil {
		old = u.Plan
	}
	if err := s.Store.UpdateUserPlan(ctx, id, plan); err != nil {
		return err
	}
	if old != plan {
		for _, h := range s.hooks {
			if h.OnPlanChange != nil {
				h.OnPlanChange(id, old, plan)
			}
		}
	}
	return nil
}
