package agent

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth/berth"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time)     { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

func TestQuotaConcurrentReservations(t *testing.T) {
	t.Parallel()
	q := newQuota(time.Now, time.Minute, 10)
	var granted atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, _, ok := q.reserve("like"); ok {
				granted.Add(1)
			}
		}()
	}
	wg.Wait()
	if got, want := granted.Load(), int32(10); got != want {
		t.Fatalf("granted %d reservations, want %d", got, want)
	}
	if _, rem := q.snapshot(); rem["total"] != 0 {
		t.Fatalf("remaining total = %d, want 0", rem["total"])
	}
}

func TestQuotaDayRollover(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Date(2025, 11, 3, 23, 59, 58, 0, time.UTC)}
	q := newQuota(clk.Now, time.Minute, 2)
	for i := range 2 {
		if _, _, _, ok := q.reserve("like"); !ok {
			t.Fatalf("reservation %d denied", i)
		}
	}
	if _, _, _, ok := q.reserve("like"); ok {
		t.Fatal("third reservation granted on a quota of 2")
	}
	clk.Set(time.Date(2025, 11, 3, 23, 59, 59, 999, time.UTC))
	if _, _, _, ok := q.reserve("like"); ok {
		t.Fatal("granted before midnight UTC")
	}
	// Midnight UTC, seen from a non-UTC zone: the day is a UTC day.
	clk.Set(time.Date(2025, 11, 4, 0, 0, 0, 0, time.UTC).In(time.FixedZone("X", -5*3600)))
	_, rem, _, ok := q.reserve("like")
	if !ok || rem != 1 {
		t.Fatalf("after rollover: ok=%v remaining=%d, want true 1", ok, rem)
	}
	if today, _ := q.snapshot(); today["like"] != 1 {
		t.Fatalf("today like = %d, want 1", today["like"])
	}
}

func TestQuotaCaps(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		plan   int
		config map[string]any
		tries  map[string]int
		want   map[string]int // granted by action
	}{
		{"like cap under plan", 10, map[string]any{"likes_per_day": 3.0}, map[string]int{"like": 5, "follow": 2}, map[string]int{"like": 3, "follow": 2}},
		{"plan under cap", 4, map[string]any{"likes_per_day": 50.0}, map[string]int{"like": 6}, map[string]int{"like": 4}},
		{"zero cap", 10, map[string]any{"comments_per_day": 0.0}, map[string]int{"comment": 2, "like": 1}, map[string]int{"comment": 0, "like": 1}},
		{"plan zero allows none", 0, nil, map[string]int{"like": 1}, map[string]int{"like": 0}},
		{"unlimited plan", Unlimited, map[string]any{"follows_per_day": 1.0}, map[string]int{"follow": 3, "like": 20}, map[string]int{"follow": 1, "like": 20}},
		{"general suffix", Unlimited, map[string]any{"shares_per_day": 2.0, "pace_ms": 5.0}, map[string]int{"share": 3}, map[string]int{"share": 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := newQuota(time.Now, time.Minute, tt.plan)
			caps, err := capsFromConfig(tt.config)
			if err != nil {
				t.Fatal(err)
			}
			q.setCaps(caps)
			for _, action := range []string{"like", "comment", "follow", "share"} {
				got := 0
				for range tt.tries[action] {
					if _, _, _, ok := q.reserve(action); ok {
						got++
					}
				}
				if got != tt.want[action] {
					t.Errorf("%s: granted %d, want %d", action, got, tt.want[action])
				}
			}
		})
	}
}

func TestCapsFromConfigRejects(t *testing.T) {
	t.Parallel()
	for _, v := range []any{-1.0, 1.5, "3", true} {
		if _, err := capsFromConfig(map[string]any{"likes_per_day": v}); !errors.Is(err, berth.ErrInvalid) {
			t.Errorf("likes_per_day=%v: err = %v, want ErrInvalid", v, err)
		}
	}
}

func TestQuotaReservationLifecycle(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Date(2025, 11, 3, 10, 0, 0, 0, time.UTC)}
	q := newQuota(clk.Now, 5*time.Minute, 5)
	r, _, _, _ := q.reserve("like")
	if _, err := q.claim(r.id); err != nil {
		t.Fatalf("claim: %v", err)
	}
	if _, err := q.claim(r.id); !errors.Is(err, berth.ErrConflict) {
		t.Fatalf("second claim: %v, want ErrConflict", err)
	}
	if _, err := q.claim("nope"); !errors.Is(err, berth.ErrInvalid) {
		t.Fatalf("unknown claim: %v, want ErrInvalid", err)
	}
	r2, _, _, _ := q.reserve("like")
	clk.Add(5 * time.Minute)
	if _, err := q.claim(r2.id); !errors.Is(err, berth.ErrConflict) {
		t.Fatalf("expired claim: %v, want ErrConflict", err)
	}
	if today, _ := q.snapshot(); today["like"] != 2 {
		t.Fatalf("like count %d, want 2: an expired reservation still counts", today["like"])
	}
}
