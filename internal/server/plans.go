package server

import (
	"context"
	"net/http"
	"time"

	"github.com/berth/berth"
	"github.com/berth/berth/api"
	"github.com/berth/berth/internal/proxy"
)

// handlePlanChange moves a user to another plan, live: see
// lifecycle.Manager.ChangePlan.
func (s *server) handlePlanChange(w http.ResponseWriter, r *http.Request) {
	var req api.PlanChangeRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	u, changes, err := s.mgr.ChangePlan(r.Context(), r.PathValue("user_id"), req.Plan)
	if err != nil && len(changes) == 0 {
		s.fail(w, r, err)
		return
	}
	if err != nil {
		// Some containers changed, some not: the reconciler finishes those.
		s.log.Warn("plan change partly applied", "user", u.ID, "err", err)
	}
	out := api.PlanChangeResponse{Success: err == nil, User: userJSON(u)}
	for _, pc := range changes {
		o, oerr := s.mgr.Observe(r.Context(), pc.Container, false)
		if oerr != nil {
			o.Container = pc.Container
		}
		out.Containers = append(out.Containers, s.containerJSON(r, o))
		switch {
		case pc.Live:
			out.Applied = append(out.Applied, "live")
		case pc.Recreated:
			out.Applied = append(out.Applied, "recreated")
		default:
			out.Applied = append(out.Applied, "recorded")
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// newProxy builds the /proxy/{user_id}/… handler: it wakes the user's
// default container (see lifecycle.Manager.EnsureRunning) and forwards.
func newProxy(s *server, wakeTimeout time.Duration) (http.Handler, error) {
	return proxy.New(proxy.Deps{
		Wake: func(ctx context.Context, userID string) (proxy.Target, error) {
			type result struct {
				c   berth.Container
				err error
			}
			done := make(chan result, 1)
			// The wake goes on if this request gives up: others may be
			// waiting for it, and it ends within the health timeout.
			go func() {
				c, err := s.mgr.EnsureRunning(context.WithoutCancel(ctx), userID)
				done <- result{c, err}
			}()
			select {
			case res := <-done:
				if res.err != nil {
					return proxy.Target{}, res.err
				}
				ac := s.mgr.Agent(res.c)
				return proxy.Target{Name: res.c.Name, BaseURL: ac.BaseURL, Secret: ac.Secret}, nil
			case <-ctx.Done():
				return proxy.Target{}, ctx.Err()
			}
		},
		Begin:       s.mgr.Activity().Begin,
		Fail:        s.fail,
		Logger:      s.log,
		WakeTimeout: wakeTimeout,
	})
}
