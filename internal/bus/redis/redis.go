// Package redis is the berth.Bus on Redis pub/sub (go-redis v9): it
// carries live actions and lifecycle events between control-plane replicas.
//
// One Bus holds one pub/sub connection for all its subscriptions and fans
// messages out to them in the process, so a thousand viewers on a replica
// cost one Redis connection, not a thousand. The slow-subscriber policy is
// applied here, on the consumer side, as in the in-memory bus: each
// subscription has a bounded buffer; messages that do not fit are dropped
// and counted, and the count arrives with the next delivered message. Redis
// itself never waits for a subscriber of ours: the receive loop only ever
// does non-blocking sends.
//
// Like every berth.Bus it is best-effort: while Redis is unreachable
// messages are lost (go-redis reconnects and re-subscribes); the store stays
// the system of record.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/berth/berth"
)

// DefaultBuffer is the subscription buffer when Subscribe is given 0.
const DefaultBuffer = 256

// Options configure a Bus.
type Options struct {
	URL    string // redis://[:password@]host:port/db; required
	Prefix string // prepended to every topic, e.g. "berth:<instance>:"; lets instances share a Redis
	Logger *slog.Logger
}

// Bus is a berth.Bus on Redis.
type Bus struct {
	client *goredis.Client
	ps     *goredis.PubSub
	prefix string
	log    *slog.Logger

	mu     sync.Mutex
	topics map[string]*topic // by Redis channel
	closed bool

	stop context.CancelFunc
	done chan struct{}
}

var _ berth.Bus = (*Bus)(nil)

type topic struct {
	subs  map[*sub]struct{}
	ready chan struct{} // closed when Redis confirmed the SUBSCRIBE
}

// New connects to Redis (checking it answers) and starts the receive loop.
func New(ctx context.Context, o Options) (*Bus, error) {
	opt, err := goredis.ParseURL(o.URL)
	if err != nil {
		return nil, berth.Wrap(berth.ErrInvalid, err, "redis: bad URL")
	}
	client := goredis.NewClient(opt)
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("connect to redis: %w: %w", berth.ErrUnavailable, err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rctx, cancel := context.WithCancel(context.Background())
	b := &Bus{client: client, ps: client.Subscribe(rctx), prefix: o.Prefix, log: log,
		topics: map[string]*topic{}, stop: cancel, done: make(chan struct{})}
	// Wait for the pub/sub connection itself, so Subscribe can rely on it.
	if err := b.ps.Ping(ctx); err != nil {
		cancel()
		_ = b.ps.Close()
		_ = client.Close()
		return nil, fmt.Errorf("redis pub/sub: %w: %w", berth.ErrUnavailable, err)
	}
	go b.receive(rctx)
	return b, nil
}

// receive reads the pub/sub connection until Close, handing each message to
// the channel's subscriptions without blocking.
func (b *Bus) receive(ctx context.Context) {
	defer close(b.done)
	for {
		msg, err := b.ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			b.log.Debug("redis bus: receive", "err", err)
			continue // go-redis reconnects and re-subscribes
		}
		switch m := msg.(type) {
		case *goredis.Message:
			b.mu.Lock()
			if t := b.topics[m.Channel]; t != nil {
				data := []byte(m.Payload)
				for s := range t.subs {
					s.deliver(data)
				}
			}
			b.mu.Unlock()
		case *goredis.Subscription:
			if m.Kind == "subscribe" {
				b.mu.Lock()
				if t := b.topics[m.Channel]; t != nil {
					select {
					case <-t.ready:
					default:
						close(t.ready)
					}
				}
				b.mu.Unlock()
			}
		}
	}
}

// Publish sends data to every subscriber of topic on every replica.
func (b *Bus) Publish(ctx context.Context, topic string, data []byte) error {
	if err := b.client.Publish(ctx, b.prefix+topic, data).Err(); err != nil {
		return fmt.Errorf("publish to %s: %w: %w", topic, berth.ErrUnavailable, err)
	}
	return nil
}

// Subscribe adds a subscriber to topic and returns once Redis confirmed the
// channel's subscription, so every message published afterwards arrives.
func (b *Bus) Subscribe(ctx context.Context, name string, buffer int) (berth.Subscription, error) {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	ch := b.prefix + name
	s := &sub{bus: b, channel: ch, ch: make(chan berth.Message, buffer), stop: make(chan struct{})}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, errors.New("redis bus: closed")
	}
	t := b.topics[ch]
	first := t == nil
	if first {
		t = &topic{subs: map[*sub]struct{}{}, ready: make(chan struct{})}
		b.topics[ch] = t
	}
	t.subs[s] = struct{}{}
	ready := t.ready
	b.mu.Unlock()
	if first {
		if err := b.ps.Subscribe(ctx, ch); err != nil {
			s.Close()
			return nil, fmt.Errorf("subscribe to %s: %w: %w", name, berth.ErrUnavailable, err)
		}
	}
	select {
	case <-ready:
	case <-ctx.Done():
		s.Close()
		return nil, ctx.Err()
	}
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.stop:
		}
	}()
	return s, nil
}

type sub struct {
	bus     *Bus
	channel string
	ch      chan berth.Message

	mu      sync.Mutex
	dropped int
	done    bool

	stop      chan struct{}
	closeOnce sync.Once
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

func (s *sub) C() <-chan berth.Message { return s.ch }

// Close removes the subscriber; the last one of a channel unsubscribes it.
func (s *sub) Close() error {
	s.closeOnce.Do(func() {
		b := s.bus
		b.mu.Lock()
		last := false
		if t := b.topics[s.channel]; t != nil {
			delete(t.subs, s)
			if len(t.subs) == 0 {
				delete(b.topics, s.channel)
				last = true
			}
		}
		closed := b.closed
		b.mu.Unlock()
		if last && !closed {
			_ = b.ps.Unsubscribe(context.Background(), s.channel)
		}
		s.mu.Lock()
		s.done = true
		close(s.ch)
		s.mu.Unlock()
		close(s.stop)
	})
	return nil
}

// Close ends every subscription and the connections.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	var subs []*sub
	for _, t := range b.topics {
		for s := range t.subs {
			subs = append(subs, s)
		}
	}
	b.mu.Unlock()
	for _, s := range subs {
		s.Close()
	}
	b.stop()
	err := b.ps.Close()
	<-b.done
	return errors.Join(err, b.client.Close())
}
