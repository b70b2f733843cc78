package server

import (
	"context"
	_ "embed"
	"encoding/csv"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth/berth"
	"github.com/berth/berth/api"
)

// Webhooks is the webhook registry the server exposes; internal/webhook's
// Dispatcher is one. userID "" means the admin's own webhooks.
type Webhooks interface {
	Register(ctx context.Context, userID, url string, events []string) (berth.Webhook, error)
	List(ctx context.Context, userID string) ([]berth.Webhook, error)
	Delete(ctx context.Context, userID, id string) error
	Deliveries(ctx context.Context, userID, id string, limit int) ([]berth.WebhookDelivery, error)
}

// UsageReporter builds usage reports; internal/usage's Reporter is one.
type UsageReporter interface {
	Report(ctx context.Context, from, to string) ([]api.UsageRow, error)
}

//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the embedded OpenAPI 3.1 description of the API.
func OpenAPI() []byte { return openAPI }

func (s *server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openAPI)
}

func (s *server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	if s.metrics == nil {
		s.fail(w, r, berth.Errorf(berth.ErrNotFound, "metrics are not enabled"))
		return
	}
	s.metrics.ServeHTTP(w, r)
}

func (s *server) webhookOwner(r *http.Request) string { return r.PathValue("user_id") }

func (s *server) handleWebhookCreate(w http.ResponseWriter, r *http.Request) {
	if s.webhooks == nil {
		s.fail(w, r, berth.Errorf(berth.ErrUnavailable, "webhooks are not enabled"))
		return
	}
	var req api.WebhookRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	h, err := s.webhooks.Register(r.Context(), s.webhookOwner(r), req.URL, req.Events)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, webhookWire(h))
}

func (s *server) handleWebhookList(w http.ResponseWriter, r *http.Request) {
	if s.webhooks == nil {
		s.fail(w, r, berth.Errorf(berth.ErrUnavailable, "webhooks are not enabled"))
		return
	}
	hs, err := s.webhooks.List(r.Context(), s.webhookOwner(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := api.WebhookList{Webhooks: make([]api.Webhook, 0, len(hs))}
	for _, h := range hs {
		h.Secret = ""
		out.Webhooks = append(out.Webhooks, webhookWire(h))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) handleWebhookDelete(w http.ResponseWriter, r *http.Request) {
	if s.webhooks == nil {
		s.fail(w, r, berth.Errorf(berth.ErrUnavailable, "webhooks are not enabled"))
		return
	}
	if err := s.webhooks.Delete(r.Context(), s.webhookOwner(r), r.PathValue("id")); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "id": r.PathValue("id")})
}

func (s *server) handleWebhookDeliveries(w http.ResponseWriter, r *http.Request) {
	if s.webhooks == nil {
		s.fail(w, r, berth.Errorf(berth.ErrUnavailable, "webhooks are not enabled"))
		return
	}
	limit, err := queryInt(r, "limit", 100, 1, 1000)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ds, err := s.webhooks.Deliveries(r.Context(), s.webhookOwner(r), r.PathValue("id"), limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := api.DeliveryList{WebhookID: r.PathValue("id"), Deliveries: make([]api.WebhookDelivery, 0, len(ds))}
	for _, d := range ds {
		out.Deliveries = append(out.Deliveries, api.WebhookDelivery{ID: d.ID, EventID: d.EventID, Event: d.Event,
			Attempt: d.Attempt, StatusCode: d.StatusCode, Outcome: d.Outcome, Error: d.Error,
			DurationMS: d.Duration.Milliseconds(), Time: d.Time})
	}
	writeJSON(w, http.StatusOK, out)
}

func webhookWire(h berth.Webhook) api.Webhook {
	ev := h.Events
	if ev == nil {
		ev = []string{}
	}
	return api.Webhook{ID: h.ID, UserID: h.UserID, URL: h.URL, Events: ev, Secret: h.Secret, CreatedAt: h.CreatedAt}
}

// maxUsageDays bounds one usage export.
const maxUsageDays = 366

// handleUsage exports metered usage: ?from=&to= (YYYY-MM-DD, UTC, inclusive;
// default the current month to today) and format=json|csv.
func (s *server) handleUsage(w http.ResponseWriter, r *http.Request) {
	if s.usage == nil {
		s.fail(w, r, berth.Errorf(berth.ErrUnavailable, "usage metering is not enabled"))
		return
	}
	q := r.URL.Query()
	today := s.now().UTC()
	from, to := today.AddDate(0, 0, 1-today.Day()), today
	parse := func(name string, def time.Time) (time.Time, error) {
		v := q.Get(name)
		if v == "" {
			return def, nil
		}
		t, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return time.Time{}, berth.Errorf(berth.ErrInvalid, "%s must be a date YYYY-MM-DD, got %q", name, v)
		}
		return t, nil
	}
	var err error
	if from, err = parse("from", from); err != nil {
		s.fail(w, r, err)
		return
	}
	if to, err = parse("to", to); err != nil {
		s.fail(w, r, err)
		return
	}
	f, t := from.Format(time.DateOnly), to.Format(time.DateOnly)
	if f > t {
		s.fail(w, r, berth.Errorf(berth.ErrInvalid, "from (%s) must not be after to (%s)", f, t))
		return
	}
	if to.Sub(from) > maxUsageDays*24*time.Hour {
		s.fail(w, r, berth.Errorf(berth.ErrInvalid, "at most %d days per export", maxUsageDays))
		return
	}
	format := q.Get("format")
	if format == "" {
		format = "json"
	}
	if format != "json" && format != "csv" {
		s.fail(w, r, berth.Errorf(berth.ErrInvalid, "format must be json or csv, got %q", format))
		return
	}
	rows, err := s.usage.Report(r.Context(), f, t)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if rows == nil {
		rows = []api.UsageRow{}
	}
	if format == "json" {
		writeJSON(w, http.StatusOK, api.UsageReport{From: f, To: t, Rows: rows})
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="berth-usage-`+f+`-`+t+`.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"day", "user_id", "plan", "runtime", "running_seconds", "peak_memory_bytes", "actions_total", "actions"})
	for _, row := range rows {
		_ = cw.Write([]string{row.Day, row.UserID, row.Plan, row.Runtime,
			strconv.FormatFloat(row.RunningSeconds, 'f', 3, 64), strconv.FormatInt(row.PeakMemory, 10),
			strconv.Itoa(row.ActionsTotal), actionsCell(row.Actions)})
	}
	cw.Flush()
}

// actionsCell renders actions by type as "follow=2;like=3", sorted.
func actionsCell(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Itoa(m[k])
	}
	return strings.Join(parts, ";")
}
