package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth/berth"
)

func TestWebhooksAndUsage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTemp(t, filepath.Join(t.TempDir(), "berth.db"))
	defer s.Close()
	_, _, err := s.CreateUser(ctx, berth.User{ID: "u1", Email: "u1@example.com", Plan: "free", CreatedAt: time.Now()})
	noErr(t, err)

	noErr(t, s.CreateWebhook(ctx, berth.Webhook{ID: "wh_a", URL: "https://a.example/", Secret: "s1"}))
	noErr(t, s.CreateWebhook(ctx, berth.Webhook{ID: "wh_u", UserID: "u1", URL: "https://u.example/", Secret: "s2", Events: []string{"plan.changed", "quota.exhausted"}}))
	if err := s.CreateWebhook(ctx, berth.Webhook{ID: "wh_x", UserID: "ghost", URL: "https://x.example/", Secret: "s"}); !errors.Is(err, berth.ErrNotFound) {
		t.Errorf("webhook of an unknown user: %v, want ErrNotFound", err)
	}
	admin, err := s.ListWebhooks(ctx, "")
	noErr(t, err)
	mine, err := s.ListWebhooks(ctx, "u1")
	noErr(t, err)
	if len(admin) != 1 || admin[0].ID != "wh_a" || len(mine) != 1 || len(mine[0].Events) != 2 || mine[0].Secret != "s2" {
		t.Fatalf("admin %+v, mine %+v", admin, mine)
	}
	if err := s.DeleteWebhook(ctx, "", "wh_u"); !errors.Is(err, berth.ErrNotFound) {
		t.Errorf("the admin deleting a user's webhook through the admin scope: %v, want ErrNotFound", err)
	}
	for i := 1; i <= 3; i++ {
		noErr(t, s.AppendDelivery(ctx, berth.WebhookDelivery{WebhookID: "wh_u", EventID: "e1", Event: "plan.changed", Attempt: i, Outcome: "failed", Duration: time.Millisecond}))
	}
	ds, err := s.ListDeliveries(ctx, "wh_u", 2)
	noErr(t, err)
	if len(ds) != 2 || ds[0].Attempt != 3 || ds[0].Duration != time.Millisecond {
		t.Errorf("deliveries = %+v", ds)
	}
	if err := s.AppendDelivery(ctx, berth.WebhookDelivery{WebhookID: "gone", EventID: "e", Event: "x", Attempt: 1, Outcome: "failed"}); !errors.Is(err, berth.ErrNotFound) {
		t.Errorf("delivery to a deleted webhook: %v, want ErrNotFound", err)
	}
	noErr(t, s.DeleteUser(ctx, "u1")) // a user's webhooks and deliveries go with them
	all, err := s.AllWebhooks(ctx)
	noErr(t, err)
	if len(all) != 1 {
		t.Errorf("after deleting the user: %+v", all)
	}

	noErr(t, s.AddUsage(ctx, []berth.UsageIncrement{
		{UserID: "u1", Day: "2026-03-01", Plan: "pro", Runtime: "runc", RunningSeconds: 1.5, PeakMemory: 10},
		{UserID: "u1", Day: "2026-03-01", Plan: "pro", Runtime: "runc", RunningSeconds: 2, PeakMemory: 7},
		{UserID: "u1", Day: "2026-03-02", Plan: "pro", Runtime: "runc", RunningSeconds: 4},
	}, []berth.UsageCursor{
		{Container: "c1", StartedAt: time.Unix(100, 5).UTC(), Until: time.Unix(200, 7).UTC()},
		{Container: "c2", StartedAt: time.Unix(100, 0).UTC(), Until: time.Unix(150, 0).UTC()},
	}))
	noErr(t, s.AddUsage(ctx, nil, []berth.UsageCursor{{Container: "c2"}})) // zero Until deletes
	curs, err := s.UsageCursors(ctx)
	noErr(t, err)
	if len(curs) != 1 || curs[0].Container != "c1" || !curs[0].StartedAt.Equal(time.Unix(100, 5)) || !curs[0].Until.Equal(time.Unix(200, 7)) {
		t.Errorf("cursors = %+v", curs)
	}
	recs, err := s.ListUsage(ctx, "2026-03-01", "2026-03-01")
	noErr(t, err)
	if len(recs) != 1 || recs[0].RunningSeconds != 3.5 || recs[0].PeakMemory != 10 {
		t.Errorf("usage = %+v", recs)
	}
	_, _, err = s.CreateUser(ctx, berth.User{ID: "u2", Email: "u2@example.com", Plan: "free", CreatedAt: time.Now()})
	noErr(t, err)
	day := time.Date(2026, 3, 2, 23, 59, 59, 0, time.UTC)
	_, err = s.InsertActions(ctx, []berth.Action{
		{UserID: "u2", ContainerName: "c", Seq: 1, Action: "like", Success: true, Timestamp: day},
		{UserID: "u2", ContainerName: "c", Seq: 2, Action: "like", Success: true, Timestamp: day},
		{UserID: "u2", ContainerName: "c", Seq: 3, Action: "like", Success: true, Timestamp: day.Add(time.Second)},
	})
	noErr(t, err)
	counts, err := s.CountActionsByDay(ctx, "2026-03-02", "2026-03-02")
	noErr(t, err)
	if counts["u2"]["2026-03-02"]["like"] != 2 || len(counts["u2"]) != 1 {
		t.Errorf("counts = %v", counts)
	}
}
