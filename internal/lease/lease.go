// Package lease holds the in-process berth.Locker (the default when one
// control plane runs alone) and the helpers every Locker shares.
package lease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/berth/berth"
)

// Memory is an in-process berth.Locker: leases are exclusive within one
// process. The zero value is ready to use.
type Memory struct {
	mu   sync.Mutex
	held map[string]*memLease
}

var _ berth.Locker = (*Memory)(nil)

// NewMemory returns an empty in-process Locker.
func NewMemory() *Memory { return &Memory{} }

type memLease struct {
	m    *Memory
	name string
	lost chan struct{}
	once sync.Once
}

// TryAcquire claims name; ErrConflict when it is held.
func (m *Memory) TryAcquire(ctx context.Context, name string) (berth.Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.held == nil {
		m.held = map[string]*memLease{}
	}
	if _, ok := m.held[name]; ok {
		return nil, fmt.Errorf("lease %s: %w", name, berth.ErrConflict)
	}
	l := &memLease{m: m, name: name, lost: make(chan struct{})}
	m.held[name] = l
	return l, nil
}

func (l *memLease) Name() string          { return l.name }
func (l *memLease) Lost() <-chan struct{} { return l.lost }

func (l *memLease) Release(context.Context) error {
	l.once.Do(func() {
		l.m.mu.Lock()
		if l.m.held[l.name] == l {
			delete(l.m.held, l.name)
		}
		l.m.mu.Unlock()
		close(l.lost)
	})
	return nil
}

// Acquire waits until it holds name, polling every interval (default
// 50 ms), or until ctx is done. Errors other than ErrConflict end the wait.
func Acquire(ctx context.Context, l berth.Locker, name string, interval time.Duration) (berth.Lease, error) {
	if interval <= 0 {
		interval = 50 * time.Millisecond
	}
	for {
		ls, err := l.TryAcquire(ctx, name)
		if err == nil {
			return ls, nil
		}
		if !errors.Is(err, berth.ErrConflict) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for lease %s: %w", name, ctx.Err())
		case <-time.After(interval):
		}
	}
}

// RunWhileHeld runs f only while this replica holds the lease name: it
// waits for the lease (polling every interval), runs f with a context that
// ends when the lease is lost or ctx is done, and when f returns because
// the lease was lost, waits for the lease again. It returns when ctx is
// done. With a nil Locker it simply runs f(ctx): one control plane alone
// holds everything.
func RunWhileHeld(ctx context.Context, l berth.Locker, name string, interval time.Duration, f func(context.Context) error) error {
	if l == nil {
		return f(ctx)
	}
	for ctx.Err() == nil {
		ls, err := Acquire(ctx, l, name, interval)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// The backend is unreachable: try again after a pause.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(max(interval, time.Second)):
			}
			continue
		}
		held, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-ls.Lost():
				cancel()
			case <-held.Done():
			}
		}()
		_ = f(held)
		cancel()
		_ = ls.Release(context.WithoutCancel(ctx))
	}
	return nil
}
