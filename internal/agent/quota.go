package agent

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berth/berth"
)

// Unlimited is the remaining count reported when nothing caps an action.
const Unlimited = -1

// Quota accounting.
//
// A reservation consumes one unit of its UTC day's quota when it is granted.
// Reporting it turns it into an action without consuming more; a reservation
// never reported expires after the TTL (it can no longer be reported) but its
// unit stays consumed: expiry never refunds. Actions printed on stdout are not
// pre-checked but consume a unit each, so the remaining count may reach 0
// through them. A day is a UTC calendar day.
type quota struct {
	mu        sync.Mutex
	now       func() time.Time
	ttl       time.Duration
	day       string         // UTC date of counts, "2006-01-02"
	plan      int            // actions per day for all types; Unlimited when negative
	caps      map[string]int // per action type, from the run's config
	counts    map[string]int // units consumed today by action type
	total     int
	open      map[string]*reservation // granted, not yet reported
	reported  map[string]time.Time    // reported ids, kept until an hour past expiry, to tell "reused" from "unknown"
	lastSweep time.Time
}

type reservation struct {
	id      string
	action  string
	granted time.Time
	expires time.Time
}

func newQuota(now func() time.Time, ttl time.Duration, plan int) *quota {
	q := &quota{
		now:      now,
		ttl:      ttl,
		plan:     plan,
		caps:     map[string]int{},
		counts:   map[string]int{},
		open:     map[string]*reservation{},
		reported: map[string]time.Time{},
	}
	q.day = dayOf(now())
	return q
}

func dayOf(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// rebuild applies one ledger record, in file order, at startup.
func (q *quota) rebuild(rec record) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	today := dayOf(now)
	switch rec.Kind {
	case kindReserve:
		if dayOf(rec.Time) == today {
			q.counts[rec.Action]++
			q.total++
		}
		if rec.Expires.After(now.Add(-time.Hour)) {
			q.open[rec.Reservation] = &reservation{id: rec.Reservation, action: rec.Action, granted: rec.Time, expires: rec.Expires}
		}
	case kindAction:
		if rec.Reservation != "" {
			if r, ok := q.open[rec.Reservation]; ok {
				delete(q.open, rec.Reservation)
				q.reported[rec.Reservation] = r.expires
			}
			return
		}
		if dayOf(rec.Time) == today {
			q.counts[rec.Action]++
			q.total++
		}
	}
}

// rollover resets the counts when the UTC day changed. mu must be held.
func (q *quota) rollover(now time.Time) {
	if d := dayOf(now); d != q.day {
		q.day = d
		q.counts = map[string]int{}
		q.total = 0
	}
	if now.Sub(q.lastSweep) > time.Minute {
		q.lastSweep = now
		// Keep ids an hour past expiry so late reports get a precise answer.
		horizon := now.Add(-time.Hour)
		for id, r := range q.open {
			if r.expires.Before(horizon) {
				delete(q.open, id)
			}
		}
		for id, exp := range q.reported {
			if exp.Before(horizon) {
				delete(q.reported, id)
			}
		}
	}
}

// remaining returns how many more units of action may be granted today, or
// Unlimited. mu must be held.
func (q *quota) remaining(action string) int {
	rem := Unlimited
	if q.plan >= 0 {
		rem = max(0, q.plan-q.total)
	}
	if c, ok := q.caps[action]; ok {
		r := max(0, c-q.counts[action])
		if rem == Unlimited || r < rem {
			rem = r
		}
	}
	return rem
}

// reserve grants one unit of action atomically, or explains why not.
// The caller must make the returned reservation durable before answering.
func (q *quota) reserve(action string) (r reservation, remaining int, reason string, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	q.rollover(now)
	rem := q.remaining(action)
	if rem == 0 {
		if q.plan >= 0 && q.total >= q.plan {
			reason = "the plan's daily action quota is used up"
		} else {
			reason = "the workflow's daily cap for " + action + " is used up"
		}
		return reservation{}, 0, reason, false
	}
	q.counts[action]++
	q.total++
	r = reservation{id: newID(), action: action, granted: now, expires: now.Add(q.ttl)}
	q.open[r.id] = &r
	if rem != Unlimited {
		rem--
	}
	return r, rem, "", true
}

// claim validates a reservation for reporting and marks it reported. The
// caller writes the action; if that fails, it calls unclaim.
func (q *quota) claim(id string) (reservation, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	q.rollover(now)
	r, ok := q.open[id]
	if !ok {
		if _, used := q.reported[id]; used {
			return reservation{}, berth.Errorf(berth.ErrConflict, "reservation %q was already reported", id)
		}
		return reservation{}, berth.Errorf(berth.ErrInvalid, "unknown or expired reservation %q", id)
	}
	if !now.Before(r.expires) {
		return reservation{}, berth.Errorf(berth.ErrConflict, "reservation %q expired at %s; its unit stays counted", id, r.expires.UTC().Format(time.RFC3339))
	}
	delete(q.open, id)
	q.reported[id] = r.expires
	return *r, nil
}

func (q *quota) unclaim(r reservation) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.reported, r.id)
	q.open[r.id] = &r
}

// record counts an action that was not reserved (a stdout action line).
func (q *quota) record(action string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.rollover(q.now())
	q.counts[action]++
	q.total++
}

// setPlan changes the plan's daily quota; negative is unlimited.
func (q *quota) setPlan(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.plan = n
}

// setCaps replaces the per-workflow caps.
func (q *quota) setCaps(caps map[string]int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.caps = caps
}

// snapshot returns today's counts and the remaining units per capped
// action type plus "total" (Unlimited when the plan has no quota).
func (q *quota) snapshot() (today, remaining map[string]int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.rollover(q.now())
	today = make(map[string]int, len(q.counts))
	for k, v := range q.counts {
		today[k] = v
	}
	remaining = map[string]int{}
	for a := range q.caps {
		remaining[a] = q.remaining(a)
	}
	if q.plan >= 0 {
		remaining["total"] = max(0, q.plan-q.total)
	} else {
		remaining["total"] = Unlimited
	}
	return today, remaining
}

// capsFromConfig extracts per-action daily caps from a start config: every
// key "<action>s_per_day" with a non-negative integer value caps <action>.
func capsFromConfig(cfg map[string]any) (map[string]int, error) {
	caps := map[string]int{}
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		action, ok := strings.CutSuffix(k, "s_per_day")
		if !ok || action == "" {
			continue
		}
		var n float64
		switch v := cfg[k].(type) {
		case nil:
			continue // explicit null: no cap
		case float64:
			n = v
		case json.Number:
			f, err := v.Float64()
			if err != nil {
				return nil, berth.Errorf(berth.ErrInvalid, "config %s must be a non-negative integer", k)
			}
			n = f
		default:
			return nil, berth.Errorf(berth.ErrInvalid, "config %s must be a non-negative integer", k)
		}
		if n < 0 || n != float64(int(n)) {
			return nil, berth.Errorf(berth.ErrInvalid, "config %s must be a non-negative integer", k)
		}
		caps[action] = int(n)
	}
	return caps, nil
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
