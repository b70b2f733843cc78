package berth

import (
	"context"
	"time"
)

// Webhook is an endpoint that receives signed event deliveries. An admin
// webhook (UserID empty) receives the events of every user; a user's webhook
// receives only the events of that user's containers.
type Webhook struct {
	ID        string
	UserID    string   // owner; empty for an admin webhook
	URL       string   // http or https
	Events    []string // event names it wants; empty for all
	Secret    string   // HMAC-SHA256 key; shown once at registration
	CreatedAt time.Time
}

// WebhookDelivery is one attempt to deliver an event to a webhook.
type WebhookDelivery struct {
	ID         int64
	WebhookID  string
	EventID    string
	Event      string
	Attempt    int    // 1 for the first try
	StatusCode int    // HTTP status answered, 0 when none
	Outcome    string // "delivered", "failed" (will retry), "gave_up"
	Error      string // why it failed, when it did
	Duration   time.Duration
	Time       time.Time
}

// WebhookStore keeps webhook registrations and their delivery attempts.
// Errors are of the kinds of Store.
type WebhookStore interface {
	// CreateWebhook inserts w. ErrConflict if its id is taken; ErrNotFound
	// if its user does not exist.
	CreateWebhook(ctx context.Context, w Webhook) error
	// ListWebhooks returns the webhooks of one user, or the admin's when
	// userID is empty, oldest first.
	ListWebhooks(ctx context.Context, userID string) ([]Webhook, error)
	// AllWebhooks returns every webhook, admin and user.
	AllWebhooks(ctx context.Context) ([]Webhook, error)
	// DeleteWebhook removes a webhook of userID ("" for the admin's) and its
	// deliveries. ErrNotFound when it has no such webhook.
	DeleteWebhook(ctx context.Context, userID, id string) error
	// AppendDelivery records one delivery attempt.
	AppendDelivery(ctx context.Context, d WebhookDelivery) error
	// ListDeliveries returns the newest limit attempts of a webhook, newest first.
	ListDeliveries(ctx context.Context, webhookID string, limit int) ([]WebhookDelivery, error)
}

// UsageIncrement is metered usage to add to one user's UTC day.
type UsageIncrement struct {
	UserID         string
	Day            string // YYYY-MM-DD, UTC
	Plan           string
	Runtime        string
	RunningSeconds float64
	PeakMemory     int64 // kept as the maximum, not added
}

// UsageRecord is one user's metered usage of one UTC day on one plan and
// runtime. Actions are by type and counted for the whole day (all plans).
type UsageRecord struct {
	UserID         string
	Day            string
	Plan           string
	Runtime        string
	RunningSeconds float64
	PeakMemory     int64
}

// UsageCursor is how far one container's current run has been metered.
// It is kept with the usage so that a control-plane restart neither loses
// nor double-counts the time of containers that kept running.
type UsageCursor struct {
	Container string
	StartedAt time.Time // the engine's start time of the run
	Until     time.Time // metered up to here; zero deletes the cursor
}

// UsageStore keeps metered usage.
type UsageStore interface {
	// AddUsage adds running seconds and raises peak memory, one row per
	// user, day, plan and runtime, and saves the cursors, in one transaction.
	AddUsage(ctx context.Context, incs []UsageIncrement, cursors []UsageCursor) error
	// UsageCursors returns every saved cursor.
	UsageCursors(ctx context.Context) ([]UsageCursor, error)
	// ListUsage returns the records of days from..to (inclusive, YYYY-MM-DD),
	// ordered by day, user, plan.
	ListUsage(ctx context.Context, from, to string) ([]UsageRecord, error)
	// CountActionsByDay counts stored actions by user, UTC day and type
	// for days from..to: result[user][day][action].
	CountActionsByDay(ctx context.Context, from, to string) (map[string]map[string]map[string]int, error)
}
