package agent

import (
	"sync"

	"github.com/berth/berth/api"
)

// Slow subscribers.
//
// Publishing never blocks: each subscriber has a bounded buffer
// (subscriberBuffer events). When it is full, new events for that
// subscriber are discarded and counted. As soon as the subscriber has
// drained its buffer it is sent {"type":"dropped","count":N} before any
// further event, so it knows to resume from the ledger (GET
// /automation/actions?after_seq= or /ws?after_seq=) with the last seq it
// saw. A WebSocket peer that does not accept a write within wsWriteTimeout
// is closed with reason "slow consumer".
const subscriberBuffer = 256

type hub struct {
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
}

type subscriber struct {
	ch      chan api.Event
	wake    chan struct{} // poked when events were dropped
	done    chan struct{} // closed when the hub closes
	mu      sync.Mutex
	dropped int
}

func newHub() *hub { return &hub{subs: map[*subscriber]struct{}{}} }

// subscribe registers a subscriber; call unsubscribe when done.
func (h *hub) subscribe(buffer int) *subscriber {
	s := &subscriber{ch: make(chan api.Event, buffer), wake: make(chan struct{}, 1), done: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(s.done)
		return s
	}
	h.subs[s] = struct{}{}
	return s
}

func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.done)
	}
}

// publish delivers ev to every subscriber without blocking.
func (h *hub) publish(ev api.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.mu.Lock()
		// Once dropping, keep dropping until the subscriber has drained its
		// buffer and been told, so no event after the gap precedes the notice.
		gap := s.dropped > 0
		if !gap {
			select {
			case s.ch <- ev:
			default:
				gap = true
			}
		}
		if gap {
			s.dropped++
		}
		s.mu.Unlock()
		if gap {
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
	}
}

// close ends every subscription.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		delete(h.subs, s)
		close(s.done)
	}
}

// takeDropped returns and resets the number of events dropped.
func (s *subscriber) takeDropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.dropped
	s.dropped = 0
	return n
}

// next returns the next event to send: buffered events first and, once the
// buffer is empty, a dropped event if any were discarded. ok is false when
// the subscription ended (the hub closed) or stop is closed.
func (s *subscriber) next(stop <-chan struct{}) (api.Event, bool) {
	for {
		if len(s.ch) == 0 {
			if n := s.takeDropped(); n > 0 {
				return api.Event{Type: api.EventDropped, Count: n}, true
			}
		}
		select {
		case ev := <-s.ch:
			return ev, true
		case <-s.wake:
		case <-s.done:
			return api.Event{}, false
		case <-stop:
			return api.Event{}, false
		}
	}
}
