// Package leasetest is the conformance suite every berth.Locker passes.
package leasetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth/berth"
)

// Run runs the suite. newLocker returns a Locker on the shared backend;
// two calls stand for two replicas. Names are unique per subtest.
func Run(t *testing.T, newLocker func(t *testing.T) berth.Locker) {
	ctx := context.Background()
	t.Run("Exclusive", func(t *testing.T) {
		t.Parallel()
		a, b := newLocker(t), newLocker(t)
		name := unique(t)
		la, err := a.TryAcquire(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.TryAcquire(ctx, name); !errors.Is(err, berth.ErrConflict) {
			t.Fatalf("second replica: err = %v, want ErrConflict", err)
		}
		if _, err := a.TryAcquire(ctx, name); !errors.Is(err, berth.ErrConflict) {
			t.Fatalf("same locker again: err = %v, want ErrConflict", err)
		}
		if la.Name() != name {
			t.Errorf("Name = %q, want %q", la.Name(), name)
		}
		if err := la.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := la.Release(ctx); err != nil {
			t.Fatalf("second Release: %v", err)
		}
		select {
		case <-la.Lost():
		case <-time.After(5 * time.Second):
			t.Fatal("Lost not closed after Release")
		}
		lb, err := b.TryAcquire(ctx, name)
		if err != nil {
			t.Fatalf("after release: %v", err)
		}
		_ = lb.Release(ctx)
	})
	t.Run("NamesAreSeparate", func(t *testing.T) {
		t.Parallel()
		a, b := newLocker(t), newLocker(t)
		name := unique(t)
		la, err := a.TryAcquire(ctx, name+"-1")
		if err != nil {
			t.Fatal(err)
		}
		defer la.Release(ctx)
		lb, err := b.TryAcquire(ctx, name+"-2")
		if err != nil {
			t.Fatalf("other name: %v", err)
		}
		defer lb.Release(ctx)
	})
	t.Run("OneWinnerUnderRace", func(t *testing.T) {
		t.Parallel()
		const n = 8
		lockers := make([]berth.Locker, n)
		for i := range lockers {
			lockers[i] = newLocker(t)
		}
		name := unique(t)
		var wins atomic.Int32
		var wg sync.WaitGroup
		var mu sync.Mutex
		var held []berth.Lease
		for _, l := range lockers {
			wg.Go(func() {
				ls, err := l.TryAcquire(ctx, name)
				if err == nil {
					wins.Add(1)
					mu.Lock()
					held = append(held, ls)
					mu.Unlock()
				} else if !errors.Is(err, berth.ErrConflict) {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d replicas acquired one lease, want 1", wins.Load())
		}
		for _, ls := range held {
			_ = ls.Release(ctx)
		}
	})
}

var seq atomic.Int64

func unique(t *testing.T) string {
	return fmt.Sprintf("leasetest:%s:%d:%d", t.Name(), time.Now().UnixNano(), seq.Add(1))
}
