package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/berth/berth"
	"github.com/berth/berth/api"
)

func (s *server) handleAutomationStart(w http.ResponseWriter, r *http.Request) {
	var req api.StartRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.Workflow == "" || len(req.Workflow) > 64 {
		s.fail(w, r, berth.Errorf(berth.ErrInvalid, "workflow must be a name of 1 to 64 characters"))
		return
	}
	if len(req.Config) > 0 && !bytes.HasPrefix(bytes.TrimSpace(req.Config), []byte("{")) && string(bytes.TrimSpace(req.Config)) != "null" {
		s.fail(w, r, berth.Errorf(berth.ErrInvalid, "config must be a JSON object"))
		return
	}
	userID := r.PathValue("user_id")
	c, err := s.mgr.EnsureRunning(r.Context(), userID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	st, err := s.mgr.Agent(c).Start(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "workflow": st.Workflow, "state": st.State, "started_at": st.StartedAt})
}

func (s *server) handleAutomationStop(w http.ResponseWriter, r *http.Request) {
	userID := r.PathValue("user_id")
	c, running, err := s.runningDefault(r, userID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.mgr.Activity().Touch(c.Name)
	if !running {
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "state": api.StateIdle})
		return
	}
	st, err := s.mgr.Agent(c).Stop(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "state": st.State, "workflow": st.Workflow})
}

func (s *server) handleAutomationStatus(w http.ResponseWriter, r *http.Request) {
	userID := r.PathValue("user_id")
	c, running, err := s.runningDefault(r, userID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if running {
		st, err := s.mgr.Agent(c).Status(r.Context())
		if err == nil {
			writeJSON(w, http.StatusOK, st)
			return
		}
		s.log.Warn("agent status failed, answering from the database", "container", c.Name, "err", err)
	}
	// The container is not running: nothing runs, and today's counts come
	// from the control plane's record of actions.
	day := s.now().UTC().Truncate(24 * time.Hour)
	today, err := s.store.CountActions(r.Context(), userID, day)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	total := 0
	for _, n := range today {
		total += n
	}
	remaining := max(c.EffectiveLimits.ActionsPerDay-total, 0)
	writeJSON(w, http.StatusOK, api.AutomationStatus{State: api.StateIdle, Today: today, Remaining: map[string]int{"total": remaining}})
}

func (s *server) handleAutomationWorkflows(w http.ResponseWriter, r *http.Request) {
	c, err := s.mgr.EnsureRunning(r.Context(), r.PathValue("user_id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	wfs, err := s.mgr.Agent(c).Workflows(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"workflows": wfs})
}

// runningDefault returns the user's default container and whether the engine
// runs it.
func (s *server) runningDefault(r *http.Request, userID string) (berth.Container, bool, error) {
	c, err := s.mgr.Default(r.Context(), userID)
	if err != nil {
		return berth.Container{}, false, err
	}
	o, err := s.mgr.Observe(r.Context(), c, false)
	if err != nil {
		return berth.Container{}, false, err
	}
	return o.Container, o.Instance != nil && o.Instance.Running && o.Container.Status == berth.StatusRunning, nil
}

// handleAutomationActions serves actions from the control plane's database,
// so they are there when the container is stopped or gone.
func (s *server) handleAutomationActions(w http.ResponseWriter, r *http.Request) {
	userID := r.PathValue("user_id")
	if _, err := s.store.GetUser(r.Context(), userID); err != nil {
		if errors.Is(err, berth.ErrNotFound) {
			err = berth.Errorf(berth.ErrNotFound, "unknown user %q", userID)
		}
		s.fail(w, r, err)
		return
	}
	f, err := actionFilter(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f.UserID = userID
	as, err := s.store.ListActions(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.ActionsPage{UserID: userID, Count: len(as), Actions: actionEvents(as)})
}

// actionFilter reads limit, after_seq, before_seq, action, success, since,
// until and order from the query.
func actionFilter(r *http.Request) (berth.ActionFilter, error) {
	q := r.URL.Query()
	f := berth.ActionFilter{Limit: 50}
	var err error
	intParam := func(name string, min, max int64) int64 {
		v := q.Get(name)
		if v == "" || err != nil {
			return 0
		}
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil || n < min || n > max {
			err = berth.Errorf(berth.ErrInvalid, "%s must be an integer in [%d, %d]", name, min, max)
		}
		return n
	}
	timeParam := func(name string) time.Time {
		v := q.Get(name)
		if v == "" || err != nil {
			return time.Time{}
		}
		t, perr := time.Parse(time.RFC3339Nano, v)
		if perr != nil {
			err = berth.Errorf(berth.ErrInvalid, "%s must be an RFC 3339 time", name)
		}
		return t
	}
	if q.Has("limit") {
		f.Limit = int(intParam("limit", 1, 1000))
	}
	f.AfterSeq = intParam("after_seq", 0, 1<<62)
	f.BeforeSeq = intParam("before_seq", 1, 1<<62)
	f.Since = timeParam("since")
	f.Until = timeParam("until")
	if err != nil {
		return f, err
	}
	if a := q.Get("action"); a != "" {
		if len(a) > 64 {
			return f, berth.Errorf(berth.ErrInvalid, "action must be at most 64 characters")
		}
		f.Action = a
	}
	switch q.Get("success") {
	case "":
	case "true":
		t := true
		f.Success = &t
	case "false":
		b := false
		f.Success = &b
	default:
		return f, berth.Errorf(berth.ErrInvalid, "success must be true or false")
	}
	switch q.Get("order") {
	case "", "desc":
	case "asc":
		f.Ascending = true
	default:
		return f, berth.Errorf(berth.ErrInvalid, "order must be asc or desc")
	}
	if q.Has("after_seq") && q.Get("order") == "" {
		f.Ascending = true // resuming after a seq reads forward
	}
	return f, nil
}

func actionEvents(as []berth.Action) []api.Event {
	out := make([]api.Event, len(as))
	for i, a := range as {
		out[i] = ActionEvent(a)
	}
	return out
}

// ActionEvent renders a stored action in the original design's message shape.
func ActionEvent(a berth.Action) api.Event {
	ok := a.Success
	var details json.RawMessage
	if len(a.Details) > 0 {
		details = a.Details
	}
	return api.Event{Type: api.EventAction, Seq: a.Seq, Action: a.Action, Target: a.Target, Success: &ok,
		Timestamp: a.Timestamp.UTC(), Details: details, UserID: a.UserID}
}
