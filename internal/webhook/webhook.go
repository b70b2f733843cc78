// Package webhook delivers signed event notifications to registered
// endpoints. Events come from store hooks (lifecycle events, plan changes)
// and are queued without blocking their source: the queue is bounded, and an
// event that does not fit is dropped and counted. Each delivery is signed
// (HMAC-SHA256 over "<timestamp>.<body>" with the endpoint's secret),
// retried with exponential backoff a bounded number of times, and every
// attempt is recorded.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth/berth"
	"github.com/berth/berth/api"
	"github.com/berth/berth/internal/storehook"
)

// Deps configure a Dispatcher. Store is required.
type Deps struct {
	Store  berth.WebhookStore
	Logger *slog.Logger
	// QueueSize bounds the events waiting for delivery; default 1024.
	QueueSize int
	// MaxAttempts bounds the tries of one delivery; default 6.
	MaxAttempts int
	// Backoff is the wait before the second try; it doubles each time, up
	// to 5 minutes. Default 2 s.
	Backoff time.Duration
	// Timeout bounds one attempt; default 10 s.
	Timeout time.Duration
	// AllowPrivate lets users' (not only the admin's) webhooks reach
	// loopback, private and link-local addresses. Off by default: a
	// tenant must not make the control plane call into its own network.
	AllowPrivate bool
	// Concurrency bounds the deliveries in flight; default 16.
	Concurrency int
	// OnAttempt and OnDrop, when set, count attempts by outcome and
	// dropped events (metrics). They must not block.
	OnAttempt func(outcome string)
	OnDrop    func()
	Version   string
}

// Dispatcher queues events and delivers them. Run owns its goroutines.
type Dispatcher struct {
	d       Deps
	log     *slog.Logger
	queue   chan api.WebhookEvent
	open    *http.Client // admin webhooks
	guarded *http.Client // users' webhooks: no private addresses unless allowed

	mu      sync.Mutex
	deaths  map[string][]time.Time // container -> recent "died" times, for crash loops
	quotas  map[string]bool        // user, action and UTC day already reported exhausted
	dropped int64
}

// Crash-loop rule: this many deaths of one container within the window.
const (
	crashLoopDeaths = 3
	crashLoopWindow = 10 * time.Minute
)

// New checks deps and returns a Dispatcher; call Run to deliver.
func New(d Deps) (*Dispatcher, error) {
	if d.Store == nil {
		return nil, errors.New("webhook: Store is required")
	}
	if d.QueueSize <= 0 {
		d.QueueSize = 1024
	}
	if d.MaxAttempts <= 0 {
		d.MaxAttempts = 6
	}
	if d.Backoff <= 0 {
		d.Backoff = 2 * time.Second
	}
	if d.Timeout <= 0 {
		d.Timeout = 10 * time.Second
	}
	if d.Concurrency <= 0 {
		d.Concurrency = 16
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	guardedDialer := &net.Dialer{Timeout: 5 * time.Second, Control: refusePrivate}
	guardedTransport := &http.Transport{DialContext: guardedDialer.DialContext, MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second}
	return &Dispatcher{
		d: d, log: log, queue: make(chan api.WebhookEvent, d.QueueSize),
		open:    &http.Client{Timeout: d.Timeout, CheckRedirect: noRedirect},
		guarded: &http.Client{Timeout: d.Timeout, CheckRedirect: noRedirect, Transport: guardedTransport},
		deaths:  map[string][]time.Time{},
		quotas:  map[string]bool{},
	}, nil
}

// refusePrivate is a dialer Control that refuses loopback, private,
// link-local, multicast and unspecified addresses — checked on the address
// actually dialled, so DNS answers cannot sneak past it.
func refusePrivate(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsMulticast() || ip.IsUnspecified() || ip.IsInterfaceLocalMulticast() {
		return fmt.Errorf("webhook address %s is not public", host)
	}
	return nil
}

// Emit queues ev for delivery. It never blocks: when the queue is full the
// event is dropped and counted.
func (p *Dispatcher) Emit(ev api.WebhookEvent) {
	if ev.ID == "" {
		ev.ID = "evt_" + randHex(12)
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	select {
	case p.queue <- ev:
	default:
		p.mu.Lock()
		p.dropped++
		p.mu.Unlock()
		if p.d.OnDrop != nil {
			p.d.OnDrop()
		}
	}
}

// Dropped returns how many events were dropped because the queue was full.
func (p *Dispatcher) Dropped() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropped
}

// StoreHooks returns the hooks that turn recorded lifecycle events and plan
// changes into webhook events.
func (p *Dispatcher) StoreHooks() storehook.Hooks {
	return storehook.Hooks{OnLog: p.onLog, OnPlanChange: func(userID, old, new string) {
		p.Emit(api.WebhookEvent{Type: api.WebhookPlanChanged, UserID: userID, Data: map[string]any{"old_plan": old, "new_plan": new}})
	}}
}

func (p *Dispatcher) onLog(l berth.ContainerLog) {
	base := api.WebhookEvent{UserID: l.UserID, Container: l.ContainerName, Time: l.Time}
	switch l.Event {
	case "workflow_failed":
		wf, reason, _ := strings.Cut(l.Reason, ": ")
		base.Type, base.Data = api.WebhookAutomationFailed, map[string]any{"workflow": wf, "reason": reason}
	case "quota_denied":
		action, reason, _ := strings.Cut(l.Reason, ": ")
		if !p.firstDenial(l.UserID, action, l.Time) {
			return // once per user, action and UTC day: denials repeat on every try
		}
		base.Type, base.Data = api.WebhookQuotaExhausted, map[string]any{"action": action, "reason": reason}
	case berth.EventStopped:
		if !strings.Contains(strings.ToLower(l.Reason), "idle") {
			return
		}
		base.Type, base.Data = api.WebhookContainerIdleStopped, map[string]any{"reason": l.Reason}
	case berth.EventDied:
		if strings.Contains(l.Reason, "OOM") {
			base.Type = api.WebhookContainerOOMKilled
		} else {
			base.Type = api.WebhookContainerDied
		}
		base.Data = map[string]any{"reason": l.Reason}
		if n := p.death(l.ContainerName, l.Time); n > 0 {
			p.Emit(api.WebhookEvent{Type: api.WebhookContainerCrashLoop, UserID: l.UserID, Container: l.ContainerName,
				Time: l.Time, Data: map[string]any{"deaths": n, "window_seconds": int(crashLoopWindow.Seconds()), "last_reason": l.Reason}})
		}
	default:
		return
	}
	p.Emit(base)
}

// firstDenial reports whether this is the first quota denial of a user's
// action this UTC day.
func (p *Dispatcher) firstDenial(user, action string, t time.Time) bool {
	if t.IsZero() {
		t = time.Now()
	}
	k := user + "\x00" + action + "\x00" + t.UTC().Format(time.DateOnly)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.quotas[k] {
		return false
	}
	if len(p.quotas) > 100000 {
		clear(p.quotas) // bounded memory; at worst a repeated alert
	}
	p.quotas[k] = true
	return true
}

// death records a container's death; it returns the number of deaths in
// the window when that reaches the crash-loop rule (then starts over), else 0.
func (p *Dispatcher) death(name string, t time.Time) int {
	if t.IsZero() {
		t = time.Now()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.deaths) > 10000 {
		clear(p.deaths) // bounded memory; at worst one crash loop goes unnoticed
	}
	ds := p.deaths[name][:0:0]
	for _, d := range p.deaths[name] {
		if t.Sub(d) < crashLoopWindow {
			ds = append(ds, d)
		}
	}
	ds = append(ds, t)
	if len(ds) >= crashLoopDeaths {
		delete(p.deaths, name)
		return len(ds)
	}
	p.deaths[name] = ds
	return 0
}

// Run delivers queued events until ctx is done, then waits for the
// deliveries in flight (which stop retrying).
func (p *Dispatcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, p.d.Concurrency)
	for {
		var ev api.WebhookEvent
		select {
		case <-ctx.Done():
			return nil
		case ev = <-p.queue:
		}
		hooks, err := p.d.Store.AllWebhooks(ctx)
		if err != nil {
			p.log.Warn("webhook: list endpoints", "err", err)
			continue
		}
		body, err := json.Marshal(ev)
		if err != nil {
			continue
		}
		for _, h := range hooks {
			if !matches(h, ev) {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				p.deliver(ctx, h, ev, body)
			}()
		}
	}
}

// matches reports whether webhook h wants ev: an admin webhook any user's,
// a user's webhook only its own user's; and the event among its events.
func matches(h berth.Webhook, ev api.WebhookEvent) bool {
	if h.UserID != "" && h.UserID != ev.UserID {
		return false
	}
	return len(h.Events) == 0 || slices.Contains(h.Events, ev.Type)
}

// Sign returns the X-Berth-Signature value for a body sent at timestamp
// (Unix seconds): "sha256=" + hex HMAC-SHA256 of "<timestamp>.<body>".
func Sign(secret, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp))
	mac.Write([]byte("."))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a delivery's signature and that its timestamp is within
// tolerance of now: what a receiver should do (docs/OPERATIONS.md).
func Verify(secret, timestamp, signature string, body []byte, tolerance time.Duration, now time.Time) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return errors.New("bad timestamp")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return errors.New("timestamp outside tolerance")
	}
	if !hmac.Equal([]byte(Sign(secret, timestamp, body)), []byte(signature)) {
		return errors.New("signature mismatch")
	}
	return nil
}

func (p *Dispatcher) deliver(ctx context.Context, h berth.Webhook, ev api.WebhookEvent, body []byte) {
	wait := p.d.Backoff
	for attempt := 1; attempt <= p.d.MaxAttempts; attempt++ {
		code, dur, err := p.attempt(ctx, h, ev, body)
		outcome := "delivered"
		if err != nil {
			outcome = "failed"
			if attempt == p.d.MaxAttempts {
				outcome = "gave_up"
			}
		}
		d := berth.WebhookDelivery{WebhookID: h.ID, EventID: ev.ID, Event: ev.Type, Attempt: attempt,
			StatusCode: code, Outcome: outcome, Duration: dur, Time: time.Now().UTC()}
		if err != nil {
			d.Error = truncate(err.Error(), 300)
		}
		if rerr := p.d.Store.AppendDelivery(context.WithoutCancel(ctx), d); rerr != nil {
			if errors.Is(rerr, berth.ErrNotFound) {
				return // the webhook was deleted
			}
			p.log.Warn("webhook: record delivery", "webhook", h.ID, "err", rerr)
		}
		if p.d.OnAttempt != nil {
			p.d.OnAttempt(outcome)
		}
		if err == nil {
			return
		}
		p.log.Info("webhook: delivery failed", "webhook", h.ID, "event", ev.Type, "attempt", attempt, "err", err)
		if attempt == p.d.MaxAttempts {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Minute)
	}
}

// attempt makes one signed POST. Any 2xx is success.
func (p *Dispatcher) attempt(ctx context.Context, h berth.Webhook, ev api.WebhookEvent, body []byte) (int, time.Duration, error) {
	start := time.Now()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "berth-webhook/"+p.d.Version)
	req.Header.Set("X-Berth-Event", ev.Type)
	req.Header.Set("X-Berth-Delivery", ev.ID)
	req.Header.Set("X-Berth-Timestamp", ts)
	req.Header.Set("X-Berth-Signature", Sign(h.Secret, ts, body))
	client := p.open
	if h.UserID != "" && !p.d.AllowPrivate {
		client = p.guarded
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, time.Since(start), err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, time.Since(start), fmt.Errorf("endpoint answered %s", resp.Status)
	}
	return resp.StatusCode, time.Since(start), nil
}

// Register validates and stores a webhook of userID ("" for the admin) and
// returns it with its secret (the only time the secret is shown).
func (p *Dispatcher) Register(ctx context.Context, userID, rawURL string, events []string) (berth.Webhook, error) {
	if err := ValidateURL(rawURL); err != nil {
		return berth.Webhook{}, err
	}
	for _, e := range events {
		if !slices.Contains(api.WebhookEvents, e) {
			return berth.Webhook{}, berth.Errorf(berth.ErrInvalid, "unknown event %q (known: %s)", e, strings.Join(api.WebhookEvents, ", "))
		}
	}
	slices.Sort(events)
	events = slices.Compact(events)
	w := berth.Webhook{ID: "wh_" + randHex(8), UserID: userID, URL: rawURL, Events: events,
		Secret: "whsec_" + randHex(24), CreatedAt: time.Now().UTC()}
	if err := p.d.Store.CreateWebhook(ctx, w); err != nil {
		if errors.Is(err, berth.ErrNotFound) {
			return berth.Webhook{}, berth.Errorf(berth.ErrNotFound, "unknown user %q", userID)
		}
		return berth.Webhook{}, err
	}
	return w, nil
}

// ValidateURL accepts absolute http and https URLs with a host and no
// credentials, at most 2048 bytes.
func ValidateURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case len(raw) > 2048:
		return berth.Errorf(berth.ErrInvalid, "url is longer than 2048 bytes")
	case err != nil || u.Host == "" || u.Hostname() == "":
		return berth.Errorf(berth.ErrInvalid, "url must be an absolute http or https URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return berth.Errorf(berth.ErrInvalid, "url scheme must be http or https, not %q", u.Scheme)
	case u.User != nil:
		return berth.Errorf(berth.ErrInvalid, "url must not carry credentials")
	}
	return nil
}

// List returns the webhooks of userID ("" for the admin's), secrets removed.
func (p *Dispatcher) List(ctx context.Context, userID string) ([]berth.Webhook, error) {
	ws, err := p.d.Store.ListWebhooks(ctx, userID)
	for i := range ws {
		ws[i].Secret = ""
	}
	return ws, err
}

// Delete removes a webhook of userID ("" for the admin's).
func (p *Dispatcher) Delete(ctx context.Context, userID, id string) error {
	if err := p.d.Store.DeleteWebhook(ctx, userID, id); err != nil {
		if errors.Is(err, berth.ErrNotFound) {
			return berth.Errorf(berth.ErrNotFound, "no webhook %q", id)
		}
		return err
	}
	return nil
}

// Deliveries returns the newest attempts of a webhook of userID.
func (p *Dispatcher) Deliveries(ctx context.Context, userID, id string, limit int) ([]berth.WebhookDelivery, error) {
	ws, err := p.d.Store.ListWebhooks(ctx, userID)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(ws, func(w berth.Webhook) bool { return w.ID == id }) {
		return nil, berth.Errorf(berth.ErrNotFound, "no webhook %q", id)
	}
	return p.d.Store.ListDeliveries(ctx, id, limit)
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
