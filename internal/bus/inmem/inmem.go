// Package inmem is the in-process berth.Bus: the default when one control
// plane runs alone.
package inmem

import (
	"context"
	"errors"
	"sync"

	"github.com/berth/berth"
)

// DefaultBuffer is the subscription buffer when Subscribe is given 0.
const DefaultBuffer = 256

// Bus is an in-memory berth.Bus. The zero value is not usable; call New.
type Bus struct {
	mu     sync.RWMutex
	topics map[string]map[*sub]struct{}
	closed bool
}

var _ berth.Bus = (*Bus)(nil)

// New returns an empty bus.
func New() *Bus { return &Bus{topics: map[string]map[*sub]struct{}{}} }

type sub struct {
	bus   *Bus
	topic string
	ch    chan berth.Message

	mu      sync.Mutex // guards dropped, done and sends on ch
	dropped int
	done    bool

	stop      chan struct{}
	closeOnce sync.Once
}

// Publish delivers data to every subscriber of topic without blocking: a
// subscriber whose buffer is full has the message counted as dropped.
func (b *Bus) Publish(ctx context.Context, topic string, data []byte) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return errors.New("inmem bus: closed")
	}
	for s := range b.topics[topic] {
		s.deliver(data)
	}
	return nil
}

func (s *sub) deliver(data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return
	}
	select {
	case s.ch <- berth.Message{Data: data, Dropped: s.dropped}:
		s.dropped = 0
	default:
		s.dropped++
	}
}

// Subscribe adds a subscriber to topic.
func (b *Bus) Subscribe(ctx context.Context, topic string, buffer int) (berth.Subscription, error) {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	s := &sub{bus: b, topic: topic, ch: make(chan berth.Message, buffer), stop: make(chan struct{})}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, errors.New("inmem bus: closed")
	}
	if b.topics[topic] == nil {
		b.topics[topic] = map[*sub]struct{}{}
	}
	b.topics[topic][s] = struct{}{}
	b.mu.Unlock()
	go func() { // ends the subscription with its context; exits on Close too
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.stop:
		}
	}()
	return s, nil
}

func (s *sub) C() <-chan berth.Message { return s.ch }

// Close removes the subscriber and closes its channel.
func (s *sub) Close() error {
	s.closeOnce.Do(func() {
		s.bus.mu.Lock()
		if set := s.bus.topics[s.topic]; set != nil {
			delete(set, s)
			if len(set) == 0 {
				delete(s.bus.topics, s.topic)
			}
		}
		s.bus.mu.Unlock()
		s.mu.Lock()
		s.done = true
		close(s.ch)
		s.mu.Unlock()
		close(s.stop)
	})
	return nil
}

// Close ends every subscription.
func (b *Bus) Close() error {
	b.mu.Lock()
	var subs []*sub
	for _, set := range b.topics {
		for s := range set {
			subs = append(subs, s)
		}
	}
	b.closed = true
	b.mu.Unlock()
	for _, s := range subs {
		s.Close()
	}
	return nil
}
