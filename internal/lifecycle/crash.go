package lifecycle

import (
	"sync"
	"time"
)

// crashes remembers recent deaths of each container, in memory, to back
// automatic restarts off and to detect crash loops. A control plane restart
// forgets them: the worst case is CrashLimit more restarts before a loop is
// declared.
type crashes struct {
	mu sync.Mutex
	m  map[string]*crashState
}

type crashState struct {
	deaths []time.Time // within the window, oldest first
	seen   time.Time   // the engine's FinishedAt of the last death counted
	next   time.Time   // earliest automatic restart
}

// crashPolicy is the part of Config the crash logic needs.
type crashPolicy struct {
	base, max, window time.Duration
	limit             int
}

func (m *Manager) policy() crashPolicy {
	return crashPolicy{base: m.cfg.BackoffBase, max: m.cfg.BackoffMax, window: m.cfg.CrashWindow, limit: m.cfg.CrashLimit}
}

// backoff is the wait before the automatic restart after the n'th death in
// the window: none after the first, then base, 2×base, 4×base… up to max.
func (p crashPolicy) backoff(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	d := p.base
	for i := 2; i < n && d < p.max; i++ {
		d *= 2
	}
	return min(d, p.max)
}

// note counts a death that the engine finished at finished (zero: now) —
// once, however often it is looked at — and returns how long to wait
// before restarting, the deaths in the window, and whether the loop limit
// is reached.
func (c *crashes) note(name string, finished, now time.Time, p crashPolicy) (wait time.Duration, n int, failed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*crashState{}
	}
	s := c.m[name]
	if s == nil {
		s = &crashState{}
		c.m[name] = s
	}
	if finished.IsZero() {
		finished = now
	}
	if !finished.Equal(s.seen) {
		s.seen = finished
		kept := s.deaths[:0]
		for _, t := range s.deaths {
			if now.Sub(t) < p.window {
				kept = append(kept, t)
			}
		}
		s.deaths = append(kept, now)
		s.next = now.Add(p.backoff(len(s.deaths)))
	}
	n = len(s.deaths)
	if n >= p.limit {
		return 0, n, true
	}
	return max(s.next.Sub(now), 0), n, false
}

// count returns the deaths within the window.
func (c *crashes) count(name string, now time.Time, window time.Duration) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.m[name]
	if s == nil {
		return 0
	}
	n := 0
	for _, t := range s.deaths {
		if now.Sub(t) < window {
			n++
		}
	}
	return n
}

// clear forgets a container's deaths (a user or admin started it).
func (c *crashes) clear(name string) {
	c.mu.Lock()
	delete(c.m, name)
	c.mu.Unlock()
}
