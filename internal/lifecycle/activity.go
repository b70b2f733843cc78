package lifecycle

import (
	"sync"
	"time"
)

// Activity is the one place that defines what keeps a tenant container from
// being stopped as idle. A container is active while, or when last:
//
//   - an API call acted on it: a container action (start, stop, restart),
//     an automation call other than status (start, stop, workflows), or
//     any wake (Manager.EnsureRunning);
//   - the proxy at /proxy/{user_id}/… carried a request to its agent, or
//     holds a WebSocket to it open (an open connection is activity for as
//     long as it stays open);
//   - its agent reported a workflow running (GET /automation/status, asked
//     by the idle check before it stops anything).
//
// Status reads (container status, automation status, the admin list) and
// the control plane's own health probes and ingestion are not activity: a
// dashboard left open must not keep a container awake.
//
// Activity is kept in memory: after a control plane restart a container's
// last activity is the time the control plane first saw it (or its start),
// which can only postpone an idle stop, never hasten one.
type Activity struct {
	now  func() time.Time
	mu   sync.Mutex
	last map[string]time.Time
	open map[string]int
}

// NewActivity returns an empty tracker reading time from now.
func NewActivity(now func() time.Time) *Activity {
	return &Activity{now: now, last: map[string]time.Time{}, open: map[string]int{}}
}

// Touch records activity on a container now.
func (a *Activity) Touch(name string) {
	a.mu.Lock()
	a.last[name] = a.now()
	a.mu.Unlock()
}

// Begin records the start of a long-lived activity (a proxied WebSocket or
// a streaming response); the container is active until end is called.
func (a *Activity) Begin(name string) (end func()) {
	a.mu.Lock()
	a.open[name]++
	a.last[name] = a.now()
	a.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			if a.open[name]--; a.open[name] <= 0 {
				delete(a.open, name)
			}
			a.last[name] = a.now()
			a.mu.Unlock()
		})
	}
}

// Last returns when the container was last active (zero if never seen) and
// whether it is active right now (an open connection).
func (a *Activity) Last(name string) (last time.Time, activeNow bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.open[name] > 0 {
		return a.now(), true
	}
	return a.last[name], false
}

// Forget drops what is known of a removed container.
func (a *Activity) Forget(name string) {
	a.mu.Lock()
	delete(a.last, name)
	a.mu.Unlock()
}

// idleSince returns the moment a container's idle time counts from: its
// last activity or its start, whichever is later.
func (a *Activity) idleSince(name string, started time.Time) (since time.Time, activeNow bool) {
	last, now := a.Last(name)
	if started.After(last) {
		last = started
	}
	return last, now
}
