package agent

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/berth/berth"
	"github.com/berth/berth/api"
)

const maxBody = 1 << 20

func writeError(w http.ResponseWriter, err error) {
	status := api.HTTPStatus(err)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="berth-agent"`)
	}
	writeJSON(w, status, api.ErrorBodyOf(err))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func errNotFound(msg string) error { return berth.Errorf(berth.ErrNotFound, "%s", msg) }

// decode reads a JSON body into v.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return berth.Errorf(berth.ErrTooLarge, "request body exceeds %d bytes", maxBody)
		}
		return berth.Errorf(berth.ErrInvalid, "request body is not valid JSON: %v", err)
	}
	return nil
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(tok)
	}
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return r.URL.Query().Get("token")
	}
	return ""
}

func equal(a, b string) bool {
	return b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// secretOK reports whether the request carries the agent secret (or the
// agent runs without one).
func (a *Agent) secretOK(r *http.Request) bool {
	if a.cfg.Secret == "" {
		return a.cfg.Insecure
	}
	return equal(bearer(r), a.cfg.Secret)
}

func (a *Agent) requireSecret(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.secretOK(r) {
			writeError(w, berth.Errorf(berth.ErrUnauthorized, "missing or wrong bearer secret"))
			return
		}
		h(w, r)
	})
}

// requireRunToken admits the current run's BERTH_RUN_TOKEN or the secret.
func (a *Agent) requireRunToken(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.secretOK(r) {
			h(w, r)
			return
		}
		tok := bearer(r)
		a.mu.Lock()
		ok := a.run != nil && a.run.active() && equal(tok, a.run.token)
		a.mu.Unlock()
		if !ok {
			writeError(w, berth.Errorf(berth.ErrUnauthorized, "missing or wrong run token (BERTH_RUN_TOKEN) or the run has ended"))
			return
		}
		h(w, r)
	})
}

func (a *Agent) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, api.AgentHealth{Status: "ok", Version: Version, LedgerID: a.ledger.id, LastSeq: a.ledger.LastSeq()})
}

func (a *Agent) handleStart(w http.ResponseWriter, r *http.Request) {
	var req api.StartRequest
	if err := decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.Workflow == "" {
		writeError(w, berth.Errorf(berth.ErrInvalid, "workflow is required (known: %s)", strings.Join(a.cfg.Manifest.Names(), ", ")))
		return
	}
	if _, err := a.start(req.Workflow, req.Config); err != nil {
		a.logger.Warn("start workflow", "workflow", req.Workflow, "err", err)
		writeError(w, err)
		return
	}
	st := a.Status()
	st.Success = true
	writeJSON(w, http.StatusOK, st)
}

func (a *Agent) handleStop(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	run := a.run
	a.mu.Unlock()
	if run != nil {
		a.stopRun(run)
		// Give a well-behaved workflow a moment so the answer is usually final.
		select {
		case <-run.done:
		case <-timeAfter(a.cfg.Grace, maxStopWait):
		case <-r.Context().Done():
		}
	}
	st := a.Status()
	st.Success = true
	writeJSON(w, http.StatusOK, st)
}

func (a *Agent) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.Status())
}

func intParam(r *http.Request, name string, def int64) (int64, bool, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, false, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, true, berth.Errorf(berth.ErrInvalid, "%s must be a non-negative integer", name)
	}
	return n, true, nil
}

func (a *Agent) handleActions(w http.ResponseWriter, r *http.Request) {
	limit, _, err := intParam(r, "limit", 50)
	if err != nil {
		writeError(w, err)
		return
	}
	if limit == 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	after, hasAfter, err := intParam(r, "after_seq", 0)
	if err != nil {
		writeError(w, err)
		return
	}
	recs, err := a.ledger.actions(after, int(limit), hasAfter)
	if err != nil {
		writeError(w, err)
		return
	}
	page := api.ActionsPage{UserID: a.cfg.UserID, Count: len(recs), Actions: make([]api.Event, 0, len(recs))}
	for _, rec := range recs {
		page.Actions = append(page.Actions, actionEvent(rec))
	}
	writeJSON(w, http.StatusOK, page)
}

func (a *Agent) handleLogs(w http.ResponseWriter, r *http.Request) {
	tail, _, err := intParam(r, "tail", 100)
	if err != nil {
		writeError(w, err)
		return
	}
	lines := a.logs.tail(int(tail))
	writeJSON(w, http.StatusOK, api.AgentLogs{Count: len(lines), Lines: lines})
}

func (a *Agent) handleWorkflows(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, api.WorkflowList{Workflows: a.cfg.Manifest.list()})
}

func (a *Agent) handleLimits(w http.ResponseWriter, r *http.Request) {
	var req api.LimitsRequest
	if err := decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.ActionsPerDay < 0 {
		writeError(w, berth.Errorf(berth.ErrInvalid, "actions_per_day must not be negative"))
		return
	}
	a.quota.setPlan(req.ActionsPerDay)
	a.logger.Info("plan quota changed", "actions_per_day", req.ActionsPerDay)
	st := a.Status()
	st.Success = true
	writeJSON(w, http.StatusOK, st)
}

func (a *Agent) handleReserve(w http.ResponseWriter, r *http.Request) {
	var req api.ReserveRequest
	if err := decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	if !validAction(req.Action) {
		writeError(w, berth.Errorf(berth.ErrInvalid, "action must match [a-z0-9_-]{1,64}, got %q", req.Action))
		return
	}
	res, remaining, reason, ok := a.quota.reserve(req.Action)
	if !ok {
		a.hub.publish(api.Event{Type: api.EventQuotaDenied, Action: req.Action, Reason: reason, Timestamp: a.cfg.Now().UTC(), Workflow: a.currentWorkflow()})
		writeJSON(w, http.StatusTooManyRequests, api.ReserveResponse{Allowed: false, Reason: reason, Remaining: 0})
		return
	}
	rec := record{Kind: kindReserve, Reservation: res.id, Action: res.action, Time: res.granted.UTC(), Expires: res.expires.UTC(), Workflow: a.currentWorkflow()}
	if _, err := a.ledger.append(rec); err != nil {
		// The unit stays consumed: over-counting is the safe side.
		a.logger.Error("record reservation", "err", err)
		writeError(w, berth.Wrap(berth.ErrUnavailable, err, "the action ledger is unavailable"))
		return
	}
	writeJSON(w, http.StatusOK, api.ReserveResponse{Allowed: true, Reservation: res.id, Remaining: remaining})
}

func (a *Agent) handleReport(w http.ResponseWriter, r *http.Request) {
	var req api.ReportRequest
	if err := decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.Reservation == "" {
		writeError(w, berth.Errorf(berth.ErrInvalid, "reservation is required: reserve first with POST /v1/actions/reserve"))
		return
	}
	if len(req.Detail) > 0 && !json.Valid(req.Detail) {
		writeError(w, berth.Errorf(berth.ErrInvalid, "detail must be JSON"))
		return
	}
	res, err := a.quota.claim(req.Reservation)
	if err != nil {
		writeError(w, err)
		return
	}
	rec := record{Kind: kindAction, Reservation: res.id, Action: res.action, Target: req.Target, Success: req.Success,
		Time: a.cfg.Now().UTC(), Details: req.Detail, Workflow: a.currentWorkflow(), Source: "protocol"}
	rec, err = a.ledger.append(rec)
	if err != nil {
		a.quota.unclaim(res)
		a.logger.Error("record action", "err", err)
		writeError(w, berth.Wrap(berth.ErrUnavailable, err, "the action ledger is unavailable"))
		return
	}
	writeJSON(w, http.StatusOK, api.ReportResponse{Seq: rec.Seq})
}

func (a *Agent) currentWorkflow() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.run != nil {
		return a.run.workflow
	}
	return ""
}
