package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/berth/berth"
)

// OpsStore is a store that also keeps webhooks and metered usage, as both
// the SQLite and the PostgreSQL store do (the operator tools need it).
type OpsStore interface {
	berth.Store
	berth.WebhookStore
	berth.UsageStore
}

// RunOps runs the conformance suite of berth.WebhookStore and
// berth.UsageStore. newStore is as for Run.
func RunOps(t *testing.T, newStore func(t *testing.T) OpsStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s OpsStore)
	}{
		{"Webhooks", testWebhooks},
		{"Deliveries", testDeliveries},
		{"Usage", testUsage},
		{"CountActionsByDay", testCountActionsByDay},
		{"ConcurrentAddUsage", testConcurrentAddUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			if s == nil {
				t.Fatal("newStore returned nil")
			}
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// testWebhooks: admin and user scopes, ErrNotFound for an unknown user and
// for a delete in the wrong scope; a user's webhooks go with the user.
func testWebhooks(t *testing.T, s OpsStore) {
	ctx := context.Background()
	mustUser(t, s, "u1")
	noErr(t, "CreateWebhook admin", s.CreateWebhook(ctx, berth.Webhook{ID: "wh_a", URL: "https://a.example/", Secret: "s1", CreatedAt: at(0)}))
	noErr(t, "CreateWebhook user", s.CreateWebhook(ctx, berth.Webhook{ID: "wh_u", UserID: "u1", URL: "https://u.example/", Secret: "s2",
		Events: []string{"plan.changed", "quota.exhausted"}, CreatedAt: at(1).In(zone)}))
	wantKind(t, "CreateWebhook of an unknown user",
		s.CreateWebhook(ctx, berth.Webhook{ID: "wh_x", UserID: "ghost", URL: "https://x.example/", Secret: "s"}), berth.ErrNotFound)
	wantKind(t, "CreateWebhook with a taken id",
		s.CreateWebhook(ctx, berth.Webhook{ID: "wh_a", URL: "https://b.example/", Secret: "s"}), berth.ErrConflict)

	admin, err := s.ListWebhooks(ctx, "")
	noErr(t, "ListWebhooks admin", err)
	mine, err := s.ListWebhooks(ctx, "u1")
	noErr(t, "ListWebhooks u1", err)
	if len(admin) != 1 || admin[0].ID != "wh_a" || admin[0].UserID != "" || len(admin[0].Events) != 0 {
		t.Fatalf("admin webhooks = %+v", admin)
	}
	if len(mine) != 1 || mine[0].ID != "wh_u" || mine[0].UserID != "u1" || mine[0].URL != "https://u.example/" ||
		mine[0].Secret != "s2" || len(mine[0].Events) != 2 || mine[0].Events[1] != "quota.exhausted" {
		t.Fatalf("u1's webhooks = %+v", mine)
	}
	sameTime(t, "webhook CreatedAt", mine[0].CreatedAt, at(1))
	wantKind(t, "DeleteWebhook of a user's webhook in the admin scope", s.DeleteWebhook(ctx, "", "wh_u"), berth.ErrNotFound)
	wantKind(t, "DeleteWebhook of the admin's webhook in a user scope", s.DeleteWebhook(ctx, "u1", "wh_a"), berth.ErrNotFound)
	wantKind(t, "DeleteWebhook of a missing webhook", s.DeleteWebhook(ctx, "", "nope"), berth.ErrNotFound)

	all, err := s.AllWebhooks(ctx)
	noErr(t, "AllWebhooks", err)
	if len(all) != 2 || all[0].ID != "wh_a" || all[1].ID != "wh_u" {
		t.Errorf("AllWebhooks = %+v, want wh_a, wh_u", all)
	}
	noErr(t, "DeleteUser", s.DeleteUser(ctx, "u1"))
	all, err = s.AllWebhooks(ctx)
	noErr(t, "AllWebhooks after DeleteUser", err)
	if len(all) != 1 || all[0].ID != "wh_a" {
		t.Errorf("after deleting the user: %+v, want wh_a only", all)
	}
	noErr(t, "DeleteWebhook admin", s.DeleteWebhook(ctx, "", "wh_a"))
	all, err = s.AllWebhooks(ctx)
	noErr(t, "AllWebhooks after DeleteWebhook", err)
	if len(all) != 0 {
		t.Errorf("after deleting every webhook: %+v", all)
	}
}

// testDeliveries: newest first, limited; a missing webhook is ErrNotFound;
// deliveries go with their webhook.
func testDeliveries(t *testing.T, s OpsStore) {
	ctx := context.Background()
	mustUser(t, s, "u1")
	noErr(t, "CreateWebhook", s.CreateWebhook(ctx, berth.Webhook{ID: "wh_u", UserID: "u1", URL: "https://u.example/", Secret: "s"}))
	for i := 1; i <= 3; i++ {
		noErr(t, "AppendDelivery", s.AppendDelivery(ctx, berth.WebhookDelivery{WebhookID: "wh_u", EventID: "e1", Event: "plan.changed",
			Attempt: i, StatusCode: 500, Outcome: "failed", Error: "boom", Duration: time.Millisecond, Time: at(i)}))
	}
	ds, err := s.ListDeliveries(ctx, "wh_u", 2)
	noErr(t, "ListDeliveries", err)
	if len(ds) != 2 || ds[0].Attempt != 3 || ds[1].Attempt != 2 || ds[0].Duration != time.Millisecond ||
		ds[0].StatusCode != 500 || ds[0].Error != "boom" || ds[0].EventID != "e1" || ds[0].ID <= ds[1].ID {
		t.Errorf("deliveries = %+v", ds)
	}
	if len(ds) > 0 {
		sameTime(t, "delivery Time", ds[0].Time, at(3))
	}
	wantKind(t, "AppendDelivery to a missing webhook",
		s.AppendDelivery(ctx, berth.WebhookDelivery{WebhookID: "gone", EventID: "e", Event: "x", Attempt: 1, Outcome: "failed"}), berth.ErrNotFound)
	noErr(t, "DeleteWebhook", s.DeleteWebhook(ctx, "u1", "wh_u"))
	ds, err = s.ListDeliveries(ctx, "wh_u", 10)
	noErr(t, "ListDeliveries after DeleteWebhook", err)
	if len(ds) != 0 {
		t.Errorf("deliveries of a deleted webhook = %+v", ds)
	}
}

// testUsage: increments add running seconds and keep the peak memory; a
// zero Until deletes a cursor; cursors keep nanoseconds.
func testUsage(t *testing.T, s OpsStore) {
	ctx := context.Background()
	noErr(t, "AddUsage nothing", s.AddUsage(ctx, nil, nil))
	noErr(t, "AddUsage", s.AddUsage(ctx, []berth.UsageIncrement{
		{UserID: "u1", Day: "2026-03-01", Plan: "pro", Runtime: "runc", RunningSeconds: 1.5, PeakMemory: 10},
		{UserID: "u1", Day: "2026-03-01", Plan: "pro", Runtime: "runc", RunningSeconds: 2, PeakMemory: 7},
		{UserID: "u1", Day: "2026-03-02", Plan: "pro", Runtime: "runc", RunningSeconds: 4},
		{UserID: "u0", Day: "2026-03-01", Plan: "free", Runtime: "runc", RunningSeconds: 1},
	}, []berth.UsageCursor{
		{Container: "c1", StartedAt: time.Unix(100, 5).UTC(), Until: time.Unix(200, 7).UTC()},
		{Container: "c2", StartedAt: time.Unix(100, 0).UTC(), Until: time.Unix(150, 0).UTC()},
	}))
	noErr(t, "AddUsage cursor delete", s.AddUsage(ctx, nil, []berth.UsageCursor{{Container: "c2"}})) // zero Until deletes
	curs, err := s.UsageCursors(ctx)
	noErr(t, "UsageCursors", err)
	if len(curs) != 1 || curs[0].Container != "c1" {
		t.Fatalf("cursors = %+v", curs)
	}
	sameTime(t, "cursor StartedAt", curs[0].StartedAt, time.Unix(100, 5))
	sameTime(t, "cursor Until", curs[0].Until, time.Unix(200, 7))

	recs, err := s.ListUsage(ctx, "2026-03-01", "2026-03-01")
	noErr(t, "ListUsage", err)
	if len(recs) != 2 || recs[0].UserID != "u0" || recs[1].UserID != "u1" ||
		recs[1].RunningSeconds != 3.5 || recs[1].PeakMemory != 10 || recs[1].Plan != "pro" || recs[1].Runtime != "runc" {
		t.Errorf("usage of 2026-03-01 = %+v", recs)
	}
	recs, err = s.ListUsage(ctx, "2026-03-01", "2026-03-02")
	noErr(t, "ListUsage range", err)
	if len(recs) != 3 || recs[2].Day != "2026-03-02" || recs[2].RunningSeconds != 4 {
		t.Errorf("usage of 2026-03-01..02 = %+v", recs)
	}
	recs, err = s.ListUsage(ctx, "2026-03-03", "2026-03-09")
	noErr(t, "ListUsage empty", err)
	if len(recs) != 0 {
		t.Errorf("usage of an empty range = %+v", recs)
	}
}

// testCountActionsByDay: actions counted by user, UTC day and type.
func testCountActionsByDay(t *testing.T, s OpsStore) {
	ctx := context.Background()
	mustUser(t, s, "u2")
	day := time.Date(2026, 3, 2, 23, 59, 59, 0, time.UTC)
	_, err := s.InsertActions(ctx, []berth.Action{
		{UserID: "u2", ContainerName: "c", Seq: 1, Action: "like", Success: true, Timestamp: day},
		{UserID: "u2", ContainerName: "c", Seq: 2, Action: "like", Success: true, Timestamp: day.In(zone)},
		{UserID: "u2", ContainerName: "c", Seq: 3, Action: "like", Success: true, Timestamp: day.Add(time.Second)},
		{UserID: "u2", ContainerName: "c", Seq: 4, Action: "post", Success: true, Timestamp: day.Add(-time.Hour)},
	})
	noErr(t, "InsertActions", err)
	counts, err := s.CountActionsByDay(ctx, "2026-03-02", "2026-03-02")
	noErr(t, "CountActionsByDay", err)
	if counts["u2"]["2026-03-02"]["like"] != 2 || counts["u2"]["2026-03-02"]["post"] != 1 || len(counts["u2"]) != 1 {
		t.Errorf("counts of 2026-03-02 = %v", counts)
	}
	counts, err = s.CountActionsByDay(ctx, "2026-03-02", "2026-03-03")
	noErr(t, "CountActionsByDay range", err)
	if counts["u2"]["2026-03-03"]["like"] != 1 || len(counts["u2"]) != 2 {
		t.Errorf("counts of 2026-03-02..03 = %v", counts)
	}
}

// testConcurrentAddUsage has writers add to the same rows at once, in
// different orders: every increment counts (none overwrites another), the
// peak is the maximum, and none fails (no lost update, no deadlock).
func testConcurrentAddUsage(t *testing.T, s OpsStore) {
	ctx := context.Background()
	const writers, rounds = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for w := range writers {
		wg.Go(func() {
			for r := range rounds {
				a := berth.UsageIncrement{UserID: "u1", Day: "2026-03-01", Plan: "pro", Runtime: "runc", RunningSeconds: 1, PeakMemory: int64(w*rounds + r)}
				b := berth.UsageIncrement{UserID: "u2", Day: "2026-03-01", Plan: "pro", Runtime: "runc", RunningSeconds: 0.5}
				incs := []berth.UsageIncrement{a, b}
				if w%2 == 1 {
					incs = []berth.UsageIncrement{b, a}
				}
				cur := berth.UsageCursor{Container: fmt.Sprintf("c%d", w), StartedAt: base, Until: at(r + 1)}
				if err := s.AddUsage(ctx, incs, []berth.UsageCursor{cur}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("AddUsage: %v", err)
	}
	recs, err := s.ListUsage(ctx, "2026-03-01", "2026-03-01")
	noErr(t, "ListUsage", err)
	if len(recs) != 2 || recs[0].RunningSeconds != writers*rounds || recs[0].PeakMemory != writers*rounds-1 ||
		recs[1].RunningSeconds != writers*rounds*0.5 {
		t.Errorf("usage after concurrent adds = %+v", recs)
	}
	curs, err := s.UsageCursors(ctx)
	noErr(t, "UsageCursors", err)
	if len(curs) != writers {
		t.Errorf("cursors = %d, want %d", len(curs), writers)
	}
	for _, c := range curs {
		sameTime(t, "cursor "+c.Container+" Until", c.Until, at(rounds))
	}
}
