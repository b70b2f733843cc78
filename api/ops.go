package api

import "time"

// Webhook event names (docs/OPERATIONS.md describes each payload).
const (
	WebhookAutomationFailed     = "automation.failed"
	WebhookContainerOOMKilled   = "container.oom_killed"
	WebhookContainerDied        = "container.died"
	WebhookContainerCrashLoop   = "container.crash_looping"
	WebhookContainerIdleStopped = "container.idle_stopped"
	WebhookQuotaExhausted       = "quota.exhausted"
	WebhookPlanChanged          = "plan.changed"
)

// WebhookEvents lists every event name a webhook may ask for.
var WebhookEvents = []string{WebhookAutomationFailed, WebhookContainerOOMKilled, WebhookContainerDied,
	WebhookContainerCrashLoop, WebhookContainerIdleStopped, WebhookQuotaExhausted, WebhookPlanChanged}

// WebhookRequest is the body of POST /api/admin/webhooks and
// POST /api/users/{user_id}/webhooks. Empty Events means every event.
type WebhookRequest struct {
	URL    string   `json:"url"`
	Events []string `json:"events,omitempty"`
}

// Webhook is the wire form of a webhook. Secret is set only in the answer
// to its registration.
type Webhook struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id,omitempty"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	Secret    string    `json:"secret,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// WebhookList answers GET …/webhooks.
type WebhookList struct {
	Webhooks []Webhook `json:"webhooks"`
}

// WebhookDelivery is one recorded delivery attempt.
type WebhookDelivery struct {
	ID         int64     `json:"id"`
	EventID    string    `json:"event_id"`
	Event      string    `json:"event"`
	Attempt    int       `json:"attempt"`
	StatusCode int       `json:"status_code"`
	Outcome    string    `json:"outcome"` // delivered | failed (will retry) | gave_up
	Error      string    `json:"error,omitempty"`
	DurationMS int64     `json:"duration_ms"`
	Time       time.Time `json:"time"`
}

// DeliveryList answers GET …/webhooks/{id}/deliveries, newest first.
type DeliveryList struct {
	WebhookID  string            `json:"webhook_id"`
	Deliveries []WebhookDelivery `json:"deliveries"`
}

// WebhookEvent is the JSON body of every webhook delivery.
type WebhookEvent struct {
	ID        string         `json:"id"`   // unique per event; the same on every retry
	Type      string         `json:"type"` // one of WebhookEvents
	Time      time.Time      `json:"time"`
	UserID    string         `json:"user_id,omitempty"`
	Container string         `json:"container,omitempty"`
	Data      map[string]any `json:"data,omitempty"`
}

// UsageRow is one user's usage of one UTC day on one plan and runtime.
// Actions are the user's actions of the whole day, by type; they are on
// the day's first row of that user only (so that sums stay right).
type UsageRow struct {
	UserID         string         `json:"user_id"`
	Day            string         `json:"day"`
	Plan           string         `json:"plan"`
	Runtime        string         `json:"runtime"`
	RunningSeconds float64        `json:"running_seconds"`
	PeakMemory     int64          `json:"peak_memory_bytes"`
	Actions        map[string]int `json:"actions"`
	ActionsTotal   int            `json:"actions_total"`
}

// UsageReport answers GET /api/admin/usage?format=json.
type UsageReport struct {
	From string     `json:"from"`
	To   string     `json:"to"`
	Rows []UsageRow `json:"rows"`
}
