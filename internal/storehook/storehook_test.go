package storehook

import (
	"context"
	"errors"
	"testing"

	"github.com/berth/berth"
)

type fakeStore struct {
	berth.Store
	plan    string
	failLog bool
}

func (f *fakeStore) AppendLog(context.Context, berth.ContainerLog) error {
	if f.failLog {
		return errors.New("disk full")
	}
	return nil
}

func (f *fakeStore) GetUser(context.Context, string) (berth.User, error) {
	return berth.User{ID: "u", Plan: f.plan}, nil
}

func (f *fakeStore) UpdateUserPlan(_ context.Context, _, plan string) error {
	f.plan = plan
	return nil
}

func TestHooksSeeOnlyRecordedChanges(t *testing.T) {
	t.Parallel()
	f := &fakeStore{plan: "free"}
	var logs []string
	var plans [][2]string
	s := Wrap(f, Hooks{
		OnLog:        func(l berth.ContainerLog) { logs = append(logs, l.Event) },
		OnPlanChange: func(_, old, new string) { plans = append(plans, [2]string{old, new}) },
	}, Hooks{})
	ctx := context.Background()
	_ = s.AppendLog(ctx, berth.ContainerLog{Event: "died"})
	f.failLog = true
	if err := s.AppendLog(ctx, berth.ContainerLog{Event: "started"}); err == nil {
		t.Error("the store's error was lost")
	}
	_ = s.UpdateUserPlan(ctx, "u", "pro")
	_ = s.UpdateUserPlan(ctx, "u", "pro") // no change: no hook
	if len(logs) != 1 || logs[0] != "died" {
		t.Errorf("logs = %v, want [died]", logs)
	}
	if len(plans) != 1 || plans[0] != [2]string{"free", "pro"} {
		t.Errorf("plans = %v", plans)
	}
}
