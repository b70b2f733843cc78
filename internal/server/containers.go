package server

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth/berth"
	"github.com/berth/berth/api"
	"github.com/berth/berth/internal/lifecycle"
)

func (s *server) handleHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	h := api.Health{Status: "healthy", Timestamp: s.now().UTC(), Docker: "ok", Version: s.version}
	status := http.StatusOK
	if err := s.mgr.Ping(ctx); err != nil {
		h.Status, h.Docker, status = "unhealthy", berth.ErrorMessage(err), http.StatusServiceUnavailable
	}
	writeJSON(w, status, h)
}

func (s *server) handleOnboard(w http.ResponseWriter, r *http.Request) {
	var req api.OnboardRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	u, c, created, err := s.mgr.Onboard(r.Context(), berth.User{ID: req.UserID, Email: req.Email, Plan: req.Plan})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	tok, err := s.issueUserToken(r, u.ID, "onboard")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	o, err := s.mgr.Observe(r.Context(), c, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.OnboardResponse{
		Success:   true,
		User:      userJSON(u),
		Token:     tok,
		Created:   created,
		Container: s.containerJSON(r, o),
	})
}

func (s *server) handleCreate(w http.ResponseWriter, r *http.Request) {
	var req api.CreateContainerRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	opts := lifecycle.CreateOptions{}
	if req.AnthropicAPIKey != "" {
		if len(req.AnthropicAPIKey) > 512 || strings.ContainsAny(req.AnthropicAPIKey, "\x00\n\r") {
			s.fail(w, r, berth.Errorf(berth.ErrInvalid, "anthropic_api_key must be at most 512 printable characters"))
			return
		}
		opts.Secrets = map[string]string{"ANTHROPIC_API_KEY": req.AnthropicAPIKey}
		if s.vault != nil {
			// Sealed at rest, so every later creation of the user's
			// containers gets it too (never stored in plaintext).
			if err := berth.ValidateUserID(req.UserID); err != nil {
				s.fail(w, r, err)
				return
			}
			if _, err := s.vault.Put(r.Context(), req.UserID, "ANTHROPIC_API_KEY", req.AnthropicAPIKey); err != nil {
				s.fail(w, r, err)
				return
			}
		}
	}
	c, err := s.mgr.Create(r.Context(), req.UserID, req.Plan, opts)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	o, err := s.mgr.Observe(r.Context(), c, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.CreateContainerResponse{Success: true, Container: s.containerJSON(r, o)})
}

func (s *server) handleStatus(w http.ResponseWriter, r *http.Request) {
	userID := r.PathValue("user_id")
	c, err := s.mgr.Default(r.Context(), userID)
	if err != nil {
		if berth.ErrorCode(err) == "not_found" && !strings.HasPrefix(berth.ErrorMessage(err), "unknown user") {
			writeJSON(w, http.StatusOK, api.Container{Exists: false, UserID: userID})
			return
		}
		s.fail(w, r, err)
		return
	}
	o, err := s.mgr.Observe(r.Context(), c, true)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.containerJSON(r, o))
}

func (s *server) handleAction(w http.ResponseWriter, r *http.Request) {
	var req api.ContainerActionRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := lifecycle.ValidateAction(req.Action); err != nil {
		s.fail(w, r, err)
		return
	}
	userID := r.PathValue("user_id")
	c, err := s.mgr.Do(r.Context(), userID, req.Action)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.ContainerActionResponse{Success: true, Action: req.Action, UserID: userID, Status: c.Status})
}

func (s *server) handleLogs(w http.ResponseWriter, r *http.Request) {
	tail, err := queryInt(r, "tail", 100, 1, 10000)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	userID := r.PathValue("user_id")
	logs, err := s.mgr.Logs(r.Context(), userID, tail)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.LogsResponse{UserID: userID, Logs: logs})
}

func (s *server) handleAdminContainers(w http.ResponseWriter, r *http.Request) {
	cs, err := s.mgr.List(r.Context(), "")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]api.Container, len(cs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8) // bound concurrent engine calls
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			o, err := s.mgr.Observe(r.Context(), c, true)
			if err != nil {
				o = lifecycle.Observed{Container: c}
			}
			out[i] = s.containerJSON(r, o)
		}()
	}
	wg.Wait()
	writeJSON(w, http.StatusOK, api.ContainerList{Total: len(out), Containers: out})
}

func userJSON(u berth.User) api.User {
	return api.User{UserID: u.ID, Email: u.Email, Plan: u.Plan, CreatedAt: u.CreatedAt}
}

func limitsJSON(l berth.Limits) *api.Limits {
	return &api.Limits{MemoryBytes: l.MemoryBytes, CPUs: l.CPUs, PidsLimit: l.PidsLimit, ActionsPerDay: l.ActionsPerDay}
}

// containerJSON renders the <container> shape of the API. It never includes
// the agent secret or any environment value.
func (s *server) containerJSON(r *http.Request, o lifecycle.Observed) api.Container {
	c := o.Container
	created := c.CreatedAt
	out := api.Container{
		Exists:          true,
		UserID:          c.UserID,
		ContainerID:     c.RuntimeID,
		ContainerName:   c.Name,
		Status:          c.Status,
		Health:          c.Health,
		LastError:       c.LastError,
		Plan:            c.Plan,
		Image:           c.Image,
		Limits:          limitsJSON(c.Limits),
		EffectiveLimits: limitsJSON(c.EffectiveLimits),
		WebsocketURL:    s.websocketURL(r, c.UserID),
		CreatedAt:       &created,
	}
	if o.Instance != nil {
		out.Runtime = o.Instance.Runtime
	} else if p, err := s.mgr.Plans().Get(c.Plan); err == nil {
		out.Runtime = p.Runtime
	}
	if out.Runtime == "" {
		out.Runtime = berth.RuntimeRunc
	}
	if o.Instance == nil && c.Status != berth.StatusCreating {
		out.Status, out.Health = "missing", "unknown"
	}
	if o.Instance != nil && !o.Instance.Running && c.Status != berth.StatusRunning && o.Instance.State != "created" {
		code := o.Instance.ExitCode
		out.ExitCode, out.OOMKilled = &code, o.Instance.OOMKilled
	}
	if o.Instance != nil && (o.Instance.OOMKilled || o.Instance.OOMKills > 0) {
		// The engine saw the kernel OOM-kill a process of the container
		// (the container itself, or a process in it, which the kernel
		// picked as the largest).
		out.OOMKilled = true
		out.OOMKills = o.Instance.OOMKills
	}
	if c.Status == berth.StatusRunning && !c.StartedAt.IsZero() {
		st := c.StartedAt
		out.StartedAt = &st
		out.UptimeSeconds = int64(s.now().Sub(st).Seconds())
	}
	if !o.LastActivity.IsZero() {
		t := o.LastActivity.UTC()
		out.LastActivity = &t
	}
	if !o.IdleStopAt.IsZero() {
		t := o.IdleStopAt.UTC()
		out.IdleStopAt = &t
	}
	out.Restarts = o.Restarts
	if o.Usage != nil {
		out.Usage = &api.Usage{CPUPercent: o.Usage.CPUPercent, MemoryBytes: o.Usage.MemoryBytes,
			MemoryLimitBytes: o.Usage.MemoryLimitBytes, Pids: o.Usage.Pids, Time: o.Usage.Time}
	}
	if counts, err := s.store.CountActions(r.Context(), c.UserID, time.Time{}); err == nil {
		for _, n := range counts {
			out.TotalActions += int64(n)
		}
	}
	return out
}

func (s *server) websocketURL(r *http.Request, userID string) string {
	base := s.publicURL
	if base == "" {
		scheme := "http"
		if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	base = strings.TrimSuffix(base, "/")
	base = strings.Replace(strings.Replace(base, "https://", "wss://", 1), "http://", "ws://", 1)
	return base + "/ws/" + userID
}

// handleEvents serves the lifecycle events (created, started, stopped,
// died, workflow_completed, quota_denied, …) of a user's default container,
// newest first.
func (s *server) handleEvents(w http.ResponseWriter, r *http.Request) {
	limit, err := queryInt(r, "limit", 100, 1, 1000)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	userID := r.PathValue("user_id")
	c, err := s.mgr.Default(r.Context(), userID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	logs, err := s.store.ListLogs(r.Context(), c.Name, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if logs == nil {
		logs = []berth.ContainerLog{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"user_id": userID, "count": len(logs), "events": logs})
}

// queryInt reads an optional integer query parameter within [min, max].
func queryInt(r *http.Request, name string, def, min, max int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		return 0, berth.Errorf(berth.ErrInvalid, "%s must be an integer in [%d, %d]", name, min, max)
	}
	return n, nil
}
