package postgres

import (
	"context"
	"database/sql"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/berth/berth"
)

var (
	_ berth.WebhookStore = (*Store)(nil)
	_ berth.UsageStore   = (*Store)(nil)
)

const webhookColumns = `id, user_id, url, events, secret, created_at`

func scanWebhook(row interface{ Scan(...any) error }) (berth.Webhook, error) {
	var w berth.Webhook
	var user sql.NullString
	var events, created string
	if err := row.Scan(&w.ID, &user, &w.URL, &events, &w.Secret, &created); err != nil {
		return w, err
	}
	w.UserID = user.String
	if events != "" {
		w.Events = strings.Split(events, ",")
	}
	var err error
	w.CreatedAt, err = parseTime(created)
	return w, err
}

// CreateWebhook inserts w; a zero CreatedAt is set to now.
func (s *Store) CreateWebhook(ctx context.Context, w berth.Webhook) error {
	if w.CreatedAt.IsZero() {
		w.CreatedAt = now()
	}
	user := sql.NullString{String: w.UserID, Valid: w.UserID != ""}
	_, err := s.db.ExecContext(ctx, `INSERT INTO webhooks (`+webhookColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
		w.ID, user, w.URL, strings.Join(w.Events, ","), w.Secret, formatTime(w.CreatedAt))
	return mapErr("create webhook "+w.ID, err)
}

// ListWebhooks returns the webhooks of userID (the admin's when empty).
func (s *Store) ListWebhooks(ctx context.Context, userID string) ([]berth.Webhook, error) {
	q := `SELECT ` + webhookColumns + ` FROM webhooks WHERE user_id IS NULL ORDER BY created_at, id`
	args := []any{}
	if userID != "" {
		q = `SELECT ` + webhookColumns + ` FROM webhooks WHERE user_id = ? ORDER BY created_at, id`
		args = append(args, userID)
	}
	return s.queryWebhooks(ctx, q, args...)
}

// AllWebhooks returns every webhook.
func (s *Store) AllWebhooks(ctx context.Context) ([]berth.Webhook, error) {
	return s.queryWebhooks(ctx, `SELECT `+webhookColumns+` FROM webhooks ORDER BY created_at, id`)
}

func (s *Store) queryWebhooks(ctx context.Context, q string, args ...any) ([]berth.Webhook, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, mapErr("list webhooks", err)
	}
	defer rows.Close()
	var out []berth.Webhook
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, mapErr("list webhooks", err)
		}
		out = append(out, w)
	}
	return out, mapErr("list webhooks", rows.Err())
}

// DeleteWebhook removes a webhook of userID ("" for the admin's).
func (s *Store) DeleteWebhook(ctx context.Context, userID, id string) error {
	q, args := `DELETE FROM webhooks WHERE id = ? AND user_id IS NULL`, []any{id}
	if userID != "" {
		q, args = `DELETE FROM webhooks WHERE id = ? AND user_id = ?`, []any{id, userID}
	}
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return mapErr("delete webhook "+id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("webhook", id)
	}
	return nil
}

// AppendDelivery records one attempt. A webhook deleted meanwhile makes it
// ErrNotFound.
func (s *Store) AppendDelivery(ctx context.Context, d berth.WebhookDelivery) error {
	if d.Time.IsZero() {
		d.Time = now()
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO webhook_deliveries
		(webhook_id, event_id, event, attempt, status_code, outcome, error, duration_ns, time)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.WebhookID, d.EventID, d.Event, d.Attempt, d.StatusCode, d.Outcome, d.Error, int64(d.Duration), formatTime(d.Time))
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23503" { // foreign_key_violation
		return notFound("webhook", d.WebhookID)
	}
	return mapErr("record delivery to "+d.WebhookID, err)
}

// ListDeliveries returns the newest limit attempts, newest first.
func (s *Store) ListDeliveries(ctx context.Context, webhookID string, limit int) ([]berth.WebhookDelivery, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, webhook_id, event_id, event, attempt, status_code, outcome, error, duration_ns, time
		FROM webhook_deliveries WHERE webhook_id = ? ORDER BY id DESC LIMIT ?`, webhookID, limit)
	if err != nil {
		return nil, mapErr("list deliveries", err)
	}
	defer rows.Close()
	var out []berth.WebhookDelivery
	for rows.Next() {
		var d berth.WebhookDelivery
		var dur int64
		var t string
		if err := rows.Scan(&d.ID, &d.WebhookID, &d.EventID, &d.Event, &d.Attempt, &d.StatusCode, &d.Outcome, &d.Error, &dur, &t); err != nil {
			return nil, mapErr("list deliveries", err)
		}
		d.Duration = time.Duration(dur)
		if d.Time, err = parseTime(t); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, mapErr("list deliveries", rows.Err())
}

// AddUsage adds every increment and saves the cursors in one transaction.
// Each increment is an atomic INSERT … ON CONFLICT DO UPDATE that adds to
// the stored row under its row lock, so increments of several replicas
// add up rather than overwrite one another; the rows (and cursors) are
// touched in key order so two concurrent transactions cannot deadlock.
func (s *Store) AddUsage(ctx context.Context, incs []berth.UsageIncrement, cursors []berth.UsageCursor) (err error) {
	if len(incs) == 0 && len(cursors) == 0 {
		return nil
	}
	incs = append([]berth.UsageIncrement(nil), incs...)
	sort.SliceStable(incs, func(i, j int) bool {
		a, b := incs[i], incs[j]
		if a.UserID != b.UserID {
			return a.UserID < b.UserID
		}
		if a.Day != b.Day {
			return a.Day < b.Day
		}
		if a.Plan != b.Plan {
			return a.Plan < b.Plan
		}
		return a.Runtime < b.Runtime
	})
	cursors = append([]berth.UsageCursor(nil), cursors...)
	sort.SliceStable(cursors, func(i, j int) bool { return cursors[i].Container < cursors[j].Container })
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return mapErr("add usage", err)
	}
	defer rollback(tx, &err)
	for _, in := range incs {
		if _, err = tx.ExecContext(ctx, `INSERT INTO usage_daily (user_id, day, plan, runtime, running_seconds, peak_memory)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (user_id, day, plan, runtime) DO UPDATE SET
			  running_seconds = usage_daily.running_seconds + excluded.running_seconds,
			  peak_memory = GREATEST(usage_daily.peak_memory, excluded.peak_memory)`,
			in.UserID, in.Day, in.Plan, in.Runtime, in.RunningSeconds, in.PeakMemory); err != nil {
			return mapErr("add usage", err)
		}
	}
	for _, c := range cursors {
		if c.Until.IsZero() {
			_, err = tx.ExecContext(ctx, `DELETE FROM usage_cursors WHERE container_name = ?`, c.Container)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO usage_cursors (container_name, started_at, until) VALUES (?, ?, ?)
				ON CONFLICT (container_name) DO UPDATE SET started_at = excluded.started_at, until = excluded.until`,
				c.Container, formatTime(c.StartedAt), formatTime(c.Until))
		}
		if err != nil {
			return mapErr("save usage cursor", err)
		}
	}
	if err = tx.Commit(); err != nil {
		return mapErr("add usage", err)
	}
	return nil
}

// UsageCursors returns every saved cursor.
func (s *Store) UsageCursors(ctx context.Context) ([]berth.UsageCursor, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT container_name, started_at, until FROM usage_cursors ORDER BY container_name`)
	if err != nil {
		return nil, mapErr("list usage cursors", err)
	}
	defer rows.Close()
	var out []berth.UsageCursor
	for rows.Next() {
		var c berth.UsageCursor
		var st, un string
		if err := rows.Scan(&c.Container, &st, &un); err != nil {
			return nil, mapErr("list usage cursors", err)
		}
		if c.StartedAt, err = parseTime(st); err != nil {
			return nil, err
		}
		if c.Until, err = parseTime(un); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, mapErr("list usage cursors", rows.Err())
}

// ListUsage returns the records of days from..to inclusive.
func (s *Store) ListUsage(ctx context.Context, from, to string) ([]berth.UsageRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT user_id, day, plan, runtime, running_seconds, peak_memory
		FROM usage_daily WHERE day >= ? AND day <= ? ORDER BY day, user_id, plan, runtime`, from, to)
	if err != nil {
		return nil, mapErr("list usage", err)
	}
	defer rows.Close()
	var out []berth.UsageRecord
	for rows.Next() {
		var r berth.UsageRecord
		if err := rows.Scan(&r.UserID, &r.Day, &r.Plan, &r.Runtime, &r.RunningSeconds, &r.PeakMemory); err != nil {
			return nil, mapErr("list usage", err)
		}
		out = append(out, r)
	}
	return out, mapErr("list usage", rows.Err())
}

// CountActionsByDay counts actions by user, UTC day and type.
func (s *Store) CountActionsByDay(ctx context.Context, from, to string) (map[string]map[string]map[string]int, error) {
	// Stored timestamps are fixed-width UTC text: the first ten characters
	// are the UTC day, and the range is a lexical one.
	rows, err := s.db.QueryContext(ctx, `SELECT user_id, substr(timestamp, 1, 10) AS day, action, COUNT(*)
		FROM actions WHERE timestamp >= ? AND timestamp < ? GROUP BY user_id, day, action`,
		from, nextDay(to))
	if err != nil {
		return nil, mapErr("count actions", err)
	}
	defer rows.Close()
	out := map[string]map[string]map[string]int{}
	for rows.Next() {
		var user, day, action string
		var n int
		if err := rows.Scan(&user, &day, &action, &n); err != nil {
			return nil, mapErr("count actions", err)
		}
		if out[user] == nil {
			out[user] = map[string]map[string]int{}
		}
		if out[user][day] == nil {
			out[user][day] = map[string]int{}
		}
		out[user][day][action] = n
	}
	return out, mapErr("count actions", rows.Err())
}

// nextDay returns the day after a YYYY-MM-DD day (the input unchanged when
// it does not parse, which makes the range empty rather than wrong).
func nextDay(day string) string {
	t, err := time.Parse(time.DateOnly, day)
	if err != nil {
		return day
	}
	return t.AddDate(0, 0, 1).Format(time.DateOnly)
}
