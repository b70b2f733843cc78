package webhook

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/berth/berth"
	"github.com/berth/berth/api"
)

// memStore is an in-memory berth.WebhookStore.
type memStore struct {
	mu    sync.Mutex
	hooks []berth.Webhook
	dels  []berth.WebhookDelivery
}

func (m *memStore) CreateWebhook(_ context.Context, w berth.Webhook) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hooks = append(m.hooks, w)
	return nil
}

func (m *memStore) ListWebhooks(_ context.Context, userID string) ([]berth.Webhook, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []berth.Webhook
	for _, w := range m.hooks {
		if w.UserID == userID {
			out = append(out, w)
		}
	}
	return out, nil
}

func (m *memStore) AllWebhooks(context.Context) ([]berth.Webhook, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]berth.Webhook(nil), m.hooks...), nil
}

func (m *memStore) DeleteWebhook(_ context.Context, userID, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, w := range m.hooks {
		if w.ID == id && w.UserID == userID {
			m.hooks = append(m.hooks[:i], m.hooks[i+1:]...)
			return nil
		}
	}
	return berth.ErrNotFound
}

func (m *memStore) AppendDelivery(_ context.Context, d berth.WebhookDelivery) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dels = append(m.dels, d)
	return nil
}

func (m *memStore) ListDeliveries(_ context.Context, id string, _ int) ([]berth.WebhookDelivery, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []berth.WebhookDelivery
	for i := len(m.dels) - 1; i >= 0; i-- {
		if m.dels[i].WebhookID == id {
			out = append(out, m.dels[i])
		}
	}
	return out, nil
}

func (m *memStore) deliveries() []berth.WebhookDelivery {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]berth.WebhookDelivery(nil), m.dels...)
}

func TestSignVerify(t *testing.T) {
	t.Parallel()
	body := []byte(`{"type":"x"}`)
	now := time.Unix(1_700_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := Sign("s3cret", ts, body)
	// Known answer, from: printf '%s' '1700000000.{"type":"x"}' | openssl dgst -sha256 -hmac s3cret
	if want := "sha256=02f86339ae9c3e11404721ac50eb73a0a5bf4480b42975d8eef5d42ebf8a12d8"; sig != want {
		t.Fatalf("Sign = %q, want %q", sig, want)
	}
	if err := Verify("s3cret", ts, sig, body, 5*time.Minute, now); err != nil {
		t.Errorf("verify: %v", err)
	}
	cases := []struct {
		name, secret, ts, sig string
		body                  []byte
		now                   time.Time
	}{
		{"wrong secret", "other", ts, sig, body, now},
		{"changed body", "s3cret", ts, sig, []byte(`{"type":"y"}`), now},
		{"replayed late", "s3cret", ts, sig, body, now.Add(10 * time.Minute)},
		{"bad timestamp", "s3cret", "x", sig, body, now},
	}
	for _, c := range cases {
		if err := Verify(c.secret, c.ts, c.sig, c.body, 5*time.Minute, c.now); err == nil {
			t.Errorf("%s: verified", c.name)
		}
	}
}

func TestEmitNeverBlocks(t *testing.T) {
	t.Parallel()
	drops := 0
	p, err := New(Deps{Store: &memStore{}, QueueSize: 2, OnDrop: func() { drops++ }})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		for i := 0; i < 10; i++ {
			p.Emit(api.WebhookEvent{Type: api.WebhookPlanChanged})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Emit blocked on a full queue")
	}
	if got := p.Dropped(); got != 8 || drops != 8 {
		t.Errorf("dropped %d (hook %d), want 8", got, drops)
	}
}

func TestDeliveryRetriesAndScopes(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	calls := 0
	var got []*http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		calls++
		n := calls
		got = append(got, r)
		mu.Unlock()
		if err := Verify("whsec_admin", r.Header.Get("X-Berth-Timestamp"), r.Header.Get("X-Berth-Signature"), body, time.Minute, time.Now()); err != nil {
			t.Errorf("delivery %d: %v", n, err)
		}
		if n == 1 {
			w.WriteHeader(500)
		}
	}))
	defer srv.Close()
	st := &memStore{hooks: []berth.Webhook{
		{ID: "wh_admin", URL: srv.URL, Secret: "whsec_admin", Events: []string{api.WebhookContainerOOMKilled}},
		{ID: "wh_bob", UserID: "bob", URL: srv.URL, Secret: "whsec_bob"},
	}}
	p, err := New(Deps{Store: st, Backoff: 20 * time.Millisecond, MaxAttempts: 3, AllowPrivate: false})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	// alice's OOM kill: the admin's webhook only (bob's is bob's; and bob's
	// private address is refused anyway).
	p.StoreHooks().OnLog(berth.ContainerLog{ContainerName: "c-alice", UserID: "alice", Event: berth.EventDied, Reason: "OOM-killed", Time: time.Now()})
	deadline := time.Now().Add(5 * time.Second)
	for {
		ds := st.deliveries()
		if len(ds) >= 2 {
			if ds[0].Outcome != "failed" || ds[0].StatusCode != 500 || ds[1].Outcome != "delivered" || ds[1].Attempt != 2 || ds[0].EventID != ds[1].EventID {
				t.Fatalf("deliveries = %+v", ds)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries = %+v", ds)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if h := got[0].Header.Get("X-Berth-Event"); h != api.WebhookContainerOOMKilled {
		t.Errorf("X-Berth-Event = %q", h)
	}

	// bob's own event goes to bob's webhook, whose 127.0.0.1 address the
	// guard refuses: every attempt fails without reaching the server.
	p.StoreHooks().OnPlanChange("bob", "free", "pro")
	for {
		var bob []berth.WebhookDelivery
		for _, d := range st.deliveries() {
			if d.WebhookID == "wh_bob" {
				bob = append(bob, d)
			}
		}
		if len(bob) == 3 {
			if bob[2].Outcome != "gave_up" || bob[0].StatusCode != 0 {
				t.Errorf("bob's deliveries = %+v", bob)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's deliveries = %+v", bob)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 2 {
		t.Errorf("the receiver saw %d requests, want 2 (none from bob's guarded webhook)", calls)
	}
}

func TestCrashLoop(t *testing.T) {
	t.Parallel()
	p, _ := New(Deps{Store: &memStore{}, QueueSize: 100})
	t0 := time.Now()
	for i := 0; i < 3; i++ {
		p.onLog(berth.ContainerLog{ContainerName: "c", UserID: "u", Event: berth.EventDied, Reason: "exit code 1", Time: t0.Add(time.Duration(i) * time.Minute)})
	}
	var types []string
	for len(p.queue) > 0 {
		types = append(types, (<-p.queue).Type)
	}
	want := []string{api.WebhookContainerDied, api.WebhookContainerDied, api.WebhookContainerCrashLoop, api.WebhookContainerDied}
	if len(types) != len(want) {
		t.Fatalf("events %v, want %v", types, want)
	}
	for i := range want {
		if types[i] != want[i] {
			t.Fatalf("events %v, want %v", types, want)
		}
	}
}

func TestRegisterValidates(t *testing.T) {
	t.Parallel()
	p, _ := New(Deps{Store: &memStore{}})
	for _, u := range []string{"", "ftp://h.example/", "http://", "/relative", "http://user:pw@h.example/", "javascript:alert(1)"} {
		if _, err := p.Register(context.Background(), "", u, nil); !errors.Is(err, berth.ErrInvalid) {
			t.Errorf("Register(%q) = %v, want ErrInvalid", u, err)
		}
	}
	if _, err := p.Register(context.Background(), "", "https://h.example/x", []string{"nope"}); !errors.Is(err, berth.ErrInvalid) {
		t.Errorf("unknown event: %v", err)
	}
	w, err := p.Register(context.Background(), "u1", "https://h.example/x", []string{api.WebhookQuotaExhausted, api.WebhookQuotaExhausted})
	if err != nil || len(w.Secret) < 40 || len(w.Events) != 1 || w.UserID != "u1" {
		t.Errorf("Register = %+v, %v", w, err)
	}
	ws, _ := p.List(context.Background(), "u1")
	if len(ws) != 1 || ws[0].Secret != "" {
		t.Errorf("List = %+v (secrets must not be listed)", ws)
	}
}

func TestQuotaExhaustedOncePerDay(t *testing.T) {
	t.Parallel()
	p, _ := New(Deps{Store: &memStore{}, QueueSize: 100})
	day := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for _, l := range []berth.ContainerLog{
		{UserID: "u", Event: "quota_denied", Reason: "like: daily quota of 3 used", Time: day},
		{UserID: "u", Event: "quota_denied", Reason: "like: daily quota of 3 used", Time: day.Add(time.Hour)},
		{UserID: "u", Event: "quota_denied", Reason: "follow: daily quota of 1 used", Time: day},
		{UserID: "v", Event: "quota_denied", Reason: "like: daily quota of 3 used", Time: day},
		{UserID: "u", Event: "quota_denied", Reason: "like: daily quota of 3 used", Time: day.Add(24 * time.Hour)},
	} {
		p.onLog(l)
	}
	if n := len(p.queue); n != 4 {
		t.Errorf("%d quota.exhausted events, want 4 (one per user, action and day)", n)
	}
	ev := <-p.queue
	if ev.Type != api.WebhookQuotaExhausted || ev.Data["action"] != "like" {
		t.Errorf("event = %+v", ev)
	}
}
